package ncloud

import (
	"strconv"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// The simulator's items follow the shapes of the API documentation's
// examples: the same keys in the same order, Login with productData,
// Secure Zone members, system subscriptions, and the everyday server, VPC,
// object storage and sub account changes.

const simAccount = "2754689"

type simUser struct{ email, name string }

var simUsers = []simUser{
	{"honggildong@navercorp.com", "*dong Hong"},
	{"kim.minji@example.co.kr", "*inji Kim"},
	{"lee.seojun@example.com", "*eojun Lee"},
	{"park.jiwoo@example.org", "*iwoo Park"},
	{"ops-bot@example.com", "*ps Bot"},
}

var simAgents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
}

type simRegion struct{ code, name string }

var simRegions = []simRegion{{"KR", "Korea"}, {"KR", "Korea"}, {"KR", "Korea"}, {"JPN", "Japan"}, {"SGN", "Singapore"}}

// itemWriter appends one JSON object's fields.
type itemWriter struct {
	buf   []byte
	first bool
}

func (w *itemWriter) key(k string) {
	if !w.first {
		w.buf = append(w.buf, ',')
	}
	w.first = false
	w.buf = plugins.AppendJSONString(w.buf, k)
	w.buf = append(w.buf, ':')
}

func (w *itemWriter) str(k, v string) { w.key(k); w.buf = plugins.AppendJSONString(w.buf, v) }
func (w *itemWriter) num(k string, v int64) {
	w.key(k)
	w.buf = strconv.AppendInt(w.buf, v, 10)
}
func (w *itemWriter) open(k string) { w.key(k); w.buf = append(w.buf, '{'); w.first = true }
func (w *itemWriter) close()        { w.buf = append(w.buf, '}'); w.first = false }

// simShape is what an event's random bits decide.
type simShape struct {
	product, productDisplay, platform, resourceType, resourceID, resourceName, action string
	region                                                                            simRegion
	sourceType                                                                        string // API | CONSOLE | PORTAL | SYSTEM
	fail, sub                                                                         bool
	user                                                                              simUser
	ip                                                                                string
	kind                                                                              int
	n                                                                                 int64 // a number for resource ids
}

func (s *Simulator) shape(ev simEvent) simShape {
	r := ev.r
	sh := simShape{
		fail:   (r>>8)%100 < 7,
		user:   simUsers[(r>>24)%uint64(len(simUsers))],
		region: simRegions[(r>>40)%uint64(len(simRegions))],
		n:      int64(1000000 + (r>>44)%9000000),
		sub:    (r>>56)%3 == 0,
	}
	switch k := r % 100; {
	case k < 25:
		sh.kind, sh.product, sh.productDisplay, sh.platform = 0, "Account", "Account", "BOTH"
		sh.region = simRegion{"", "Common"}
		sh.resourceType, sh.resourceID, sh.action, sh.sourceType = "Customer", "static", "Login", "PORTAL"
		sh.sub = false
	case k < 35:
		sh.kind, sh.product, sh.productDisplay, sh.platform = 1, "SecureZone", "Secure Zone", "Classic"
		sh.resourceType, sh.resourceID, sh.resourceName, sh.action, sh.sourceType = "Member", "Standard/"+strconv.FormatInt(sh.n%10000, 10), "Gildong Hong", "Add Member", "CONSOLE"
	case k < 40:
		sh.kind, sh.product, sh.productDisplay, sh.platform = 2, "CloudLogAnalytics", "Cloud Log Analytics", "BOTH"
		sh.resourceType, sh.resourceID, sh.resourceName, sh.action, sh.sourceType = "Analytics", "static", "CloudLogAnalytics", "Subscribe To Cloud Log Analytics", "SYSTEM"
	case k < 65:
		sh.kind, sh.product, sh.productDisplay, sh.platform = 3, "Server", "Server", "VPC"
		sh.resourceType, sh.resourceID = "Server", strconv.FormatInt(sh.n, 10)
		sh.resourceName = "web-" + strconv.FormatInt(sh.n%40, 10)
		sh.action = []string{"Create Server Instance", "Stop Server Instance", "Start Server Instance", "Reboot Server Instance", "Terminate Server Instance"}[(r>>32)%5]
		sh.sourceType = []string{"API", "CONSOLE", "CONSOLE"}[(r>>36)%3]
	case k < 80:
		sh.kind, sh.product, sh.productDisplay, sh.platform = 4, "VPC", "VPC", "VPC"
		sh.resourceType = []string{"VPC", "Subnet", "NetworkAcl"}[(r>>32)%3]
		sh.resourceID, sh.resourceName = strconv.FormatInt(sh.n%100000, 10), "prod-"+sh.resourceType
		sh.action = map[string]string{"VPC": "Create VPC", "Subnet": "Create Subnet", "NetworkAcl": "Change Network ACL Rule"}[sh.resourceType]
		sh.sourceType = []string{"API", "CONSOLE"}[(r>>36)%2]
	case k < 90:
		sh.kind, sh.product, sh.productDisplay, sh.platform = 5, "ObjectStorage", "Object Storage", "BOTH"
		sh.resourceType, sh.resourceID = "Bucket", "audit-archive-"+strconv.FormatInt(sh.n%50, 10)
		sh.resourceName = sh.resourceID
		sh.action = []string{"Create Bucket", "Delete Bucket", "Change Bucket Permission"}[(r>>32)%3]
		sh.sourceType = []string{"API", "CONSOLE"}[(r>>36)%2]
	default:
		sh.kind, sh.product, sh.productDisplay, sh.platform = 6, "SubAccount", "Sub Account", "BOTH"
		sh.region = simRegion{"", "Common"}
		sh.resourceType, sh.resourceID = "SubAccount", strconv.FormatInt(sh.n, 10)
		sh.resourceName = sh.user.email
		sh.action = []string{"Create Sub Account", "Add Policy To Sub Account", "Delete Sub Account", "Reset Sub Account Password"}[(r>>32)%4]
		sh.sourceType = "CONSOLE"
	}
	if sh.sourceType == "CONSOLE" || sh.sourceType == "PORTAL" {
		sh.ip = simIP(r >> 16)
	}
	return sh
}

// simIP returns a masked address (as the API often shows), an IPv4 from
// the documentation ranges or an IPv6 one.
func simIP(r uint64) string {
	switch k := r % 20; {
	case k < 8:
		return MaskedIP
	case k < 11:
		return "203.0.113." + strconv.FormatUint(1+(r>>8)%254, 10)
	case k < 14:
		return "198.51.100." + strconv.FormatUint(1+(r>>8)%254, 10)
	case k < 16:
		return "192.0.2." + strconv.FormatUint(1+(r>>8)%254, 10)
	default:
		return "2001:db8:" + strconv.FormatUint((r>>8)%0xffff, 16) + "::" + strconv.FormatUint(1+(r>>24)%0xfff, 16)
	}
}

func (s *Simulator) nrn(ev simEvent) string {
	sh := s.shape(ev)
	return simNRN(sh)
}

func simNRN(sh simShape) string {
	return "nrn:PUB:" + sh.product + ":" + sh.region.code + ":" + simAccount + ":" + sh.resourceType + "/" + sh.resourceID
}

// appendItem renders ev as an API item.
func (s *Simulator) appendItem(buf []byte, ev simEvent) []byte {
	sh := s.shape(ev)
	w := itemWriter{buf: append(buf, '{'), first: true}
	w.str("historyId", s.historyID(ev))
	w.str("nrn", simNRN(sh))
	w.num("eventTime", ev.t)
	w.str("platformType", sh.platform)
	w.str("productName", sh.product)
	w.str("productDisplayName", sh.productDisplay)
	w.str("regionCode", sh.region.code)
	w.str("regionDisplayName", sh.region.name)
	w.str("resourceType", sh.resourceType)
	w.str("resourceId", sh.resourceID)
	if sh.resourceName != "" {
		w.str("resourceName", sh.resourceName)
	}
	w.str("actionDisplayName", sh.action)
	result := "SUCCESS"
	if sh.fail {
		result = "FAIL"
	}
	w.str("actionResultType", result)
	if sh.sourceType != "SYSTEM" {
		if sh.sub {
			w.str("actionUserType", "Sub")
			w.num("actionSubAccountNo", 100000+int64(ev.r>>48)%900000)
		} else {
			w.str("actionUserType", "Customer")
		}
	}
	w.str("sourceType", sh.sourceType)
	if sh.ip != "" {
		w.str("sourceIp", sh.ip)
	}
	w.open("productData")
	switch sh.kind {
	case 0: // Login, as in the documentation's first example
		w.str("twoFactorLoginType", "PHONE")
		w.str("twoFactorLoginManagerName", sh.user.name)
		w.str("twoFactorLoginInfo", "+82-010********")
		w.str("clientIpCountry", "KR")
		w.str("isTwoSetFactorLogin", "true")
		w.str("isSuccess", strconv.FormatBool(!sh.fail))
		w.str("clientIp", sh.ip)
		w.str("loginLevel", "2")
		w.str("userAgent", simAgents[(ev.r>>20)%uint64(len(simAgents))])
		w.str("userType", "CUSTOMER")
		w.str("userName", sh.user.email)
	case 1:
		w.str("memberNo", "******")
		w.str("instanceNo", strconv.FormatInt(sh.n, 10))
		w.str("memberName", "Gildong Hong")
		w.str("secureZoneNo", "1")
		w.str("secureZoneName", "Secure")
		w.str("firewallType", "STANDARD")
		w.str("zone", "KR2")
	case 2:
		w.str("memberNo", "******")
		w.str("instanceNo", strconv.FormatInt(sh.n, 10))
		w.str("prodNo", "1")
		w.str("startYmdt", time.UnixMilli(ev.t).UTC().Format("2006-01-02 15:04:05"))
	case 3:
		w.str("serverInstanceNo", sh.resourceID)
		w.str("serverName", sh.resourceName)
		w.str("zoneCode", sh.region.code+"-"+strconv.FormatInt(1+sh.n%2, 10))
		w.str("vpcNo", strconv.FormatInt(sh.n%100000, 10))
		w.str("serverSpecCode", "s2-g3")
	case 4:
		w.str("vpcNo", sh.resourceID)
		w.str("ipv4CidrBlock", "10."+strconv.FormatInt(sh.n%250, 10)+".0.0/16")
		w.str("requestUser", sh.user.email)
	case 5:
		w.str("bucketName", sh.resourceID)
		w.str("requester", sh.user.email)
	case 6:
		w.str("subAccountId", sh.resourceID)
		w.str("loginId", sh.user.email)
		w.str("email", sh.user.email)
		w.str("canConsoleAccess", "true")
	}
	w.close()
	w.buf = append(w.buf, '}')
	return w.buf
}
