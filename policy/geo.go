package policy

import (
	"net/netip"
	"sync/atomic"
)

// GeoInfo is what a GeoIP lookup knows about an address. Empty fields are
// unknown. Latitude, longitude and radius are strings as in ngrok's
// conn.geo.* variables.
type GeoInfo struct {
	CountryCode           string
	Country               string
	Subdivision           string
	City                  string
	PostalCode            string
	Latitude              string
	Longitude             string
	Radius                string // km
	IsEU                  bool
	Continent             string // name (EN), e.g. "Europe"
	MetroCode             string
	TimeZone              string // IANA name, e.g. "Europe/Berlin"
	RegisteredCountryCode string
	// Where the address range is registered (MaxMind's registered
	// country; city-level fields stay empty when the database has none).
	RegisteredCountry     string
	RegisteredContinent   string
	RegisteredSubdivision string
	RegisteredCity        string
	RegisteredIsEU        bool
	RegisteredMetroCode   string
	RegisteredTimeZone    string
	ASN                   int64
	ASOrg                 string
}

// GeoProvider resolves client addresses for conn.geo.* and
// conn.client_ip.geo.* / conn.client_ip.as.*. The geo package registers one
// with SetGeoProvider; the engine never imports it. Lookup must be safe for
// concurrent use and fast (it runs at most once per evaluation that reads a
// geo variable).
type GeoProvider interface {
	Lookup(ip netip.Addr) GeoInfo
}

var geoProvider atomic.Pointer[GeoProvider]

// SetGeoProvider installs (or, with nil, removes) the process-wide GeoIP
// provider. It may be called at any time, e.g. after a database reload;
// evaluations that start afterwards use the new one.
func SetGeoProvider(p GeoProvider) {
	if p == nil {
		geoProvider.Store(nil)
		return
	}
	geoProvider.Store(&p)
}

func lookupGeo(ip netip.Addr) GeoInfo {
	p := geoProvider.Load()
	if p == nil || !ip.IsValid() {
		return GeoInfo{}
	}
	return (*p).Lookup(ip)
}
