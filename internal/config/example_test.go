package config_test

import (
	"fmt"

	"github.com/sluicehq/sluice/internal/config"
)

func ExampleParse() {
	src := []byte(`
endpoints:
  - url: http://:8080
    upstream: [9000, 10.0.0.5:80]
    load_balancing: {policy: least_requests}
`)
	c, err := config.Parse("sluice.yaml", src, func(string) (string, bool) { return "", false })
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Endpoints[0].Upstream, c.Endpoints[0].LoadBalancing.Policy)

	_, err = config.Parse("sluice.yaml", []byte("endpoints:\n  - url: http://:8080\n    upstreams: 9000\n"), nil)
	fmt.Println(err)
	// Output:
	// [http://127.0.0.1:9000 http://10.0.0.5:80] least_requests
	// sluice.yaml:3:5: unknown key "upstreams" in endpoints[0] (known keys: insecure_skip_verify, limits, listen, load_balancing, tls, traffic_policy, traffic_policy_file, upstream, url)
}
