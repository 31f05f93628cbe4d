package ecs

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/auditforwarder/forwarder/plugins"
)

// ecsDoc collects the ECS values of one event before the document is
// built, so all its objects come from one allocation (plugins.AllocObjects).
// Values are kept as the `any` the parser boxed them in, so copying a
// string from the API item into the document allocates nothing. One ecsDoc
// is reused for every event of a transform instance. A nil value is absent.
type ecsDoc struct {
	arena                                                  *plugins.ObjectArena // the batch's, when the pipeline recycles it
	timestamp, created, original                           any
	eventID, action, code, provider, outcome               any
	cls                                                    *classification
	region, accountID, projectID, projectName, serviceName any
	orgID                                                  any
	sourceIP, sourcePort, geoCountry                       any
	userID, userName, userFullName, userEmail, userDomain  any
	targetID, targetName, targetFullName, targetEmail      any
	userAgent                                              any
	errCode, errMessage                                    any
	relIP, relUser                                         []any

	// The vendor namespace is a copy of vendorSrc (the raw item) without
	// the members whose skip flag is set; the object at index subIdx
	// (subSrc) is copied without the members whose subSkip flag is set; a
	// key renameFrom becomes renameTo.
	vendorSrc            *plugins.Object
	skip, subSkip        []bool
	nSkip, nSubSkip      int
	subIdx               int
	subSrc               *plugins.Object
	renameFrom, renameTo string
	budget               int // strings scanString may still look at
}

// reset prepares d for an item of n members.
func (d *ecsDoc) reset(n int) {
	relIP, relUser := d.relIP[:0], d.relUser[:0]
	skip, subSkip := flags(d.skip, n), d.subSkip
	*d = ecsDoc{relIP: relIP, relUser: relUser, skip: skip, subSkip: subSkip, subIdx: -1, arena: d.arena}
}

// flags returns a cleared flag slice of length n, reusing b.
func flags(b []bool, n int) []bool {
	if cap(b) < n {
		return make([]bool, n)
	}
	b = b[:n]
	clear(b)
	return b
}

// consume marks the i-th member of the raw item as copied into ECS: it is
// left out of the vendor namespace.
func (d *ecsDoc) consume(i int) {
	if i >= 0 && i < len(d.skip) && !d.skip[i] {
		d.skip[i] = true
		d.nSkip++
	}
}

// consumeSub does the same for the i-th member of subSrc.
func (d *ecsDoc) consumeSub(i int) {
	if i >= 0 && i < len(d.subSkip) && !d.subSkip[i] {
		d.subSkip[i] = true
		d.nSubSkip++
	}
}

// setSub names the nested object (member i of the raw item) whose members
// consumeSub refers to.
func (d *ecsDoc) setSub(i int, o *plugins.Object) {
	d.subIdx, d.subSrc = i, o
	d.subSkip = flags(d.subSkip, o.Len())
	d.nSubSkip = 0
}

// datasetInfo names what differs between the two datasets in the document.
type datasetInfo struct {
	name      string // event.dataset
	module    string // event.module, cloud.provider, top-level vendor key
	vendorKey string // key under the module: activity_tracer / cloudtrail
	code      byte
	nameV     any // name and module boxed once
	moduleV   any
}

var (
	ncpInfo = &datasetInfo{name: DatasetNCP, module: "ncloud", vendorKey: "activity_tracer", code: dsNCP,
		nameV: DatasetNCP, moduleV: "ncloud"}
	nhnInfo = &datasetInfo{name: DatasetNHN, module: "nhncloud", vendorKey: "cloudtrail", code: dsNHN,
		nameV: DatasetNHN, moduleV: "nhncloud"}
)

// addRelated appends v (a boxed string) to list unless it is there.
func addRelated(list []any, v any) []any {
	s, ok := v.(string)
	if !ok || s == "" {
		return list
	}
	for _, e := range list {
		if e.(string) == s {
			return list
		}
	}
	return append(list, v)
}

// setUser fills user.name and, when the name is an email address,
// user.email and user.domain (the address's domain, as Filebeat's modules
// do for user principal names). v is the boxed name.
func (t *transform) setUser(name string, v any) {
	d := &t.doc
	d.userName = v
	if dom, ok := emailDomain(name); ok {
		d.userEmail = v
		d.userDomain = t.intern(dom)
	}
	d.relUser = addRelated(d.relUser, v)
}

// Object slots of a document, in build order.
const (
	oRoot = iota
	oEvent
	oCloud
	oAccount
	oProject
	oService
	oOrg
	oSource
	oGeo
	oUser
	oTarget
	oUA
	oRelated
	oError
	oECS
	oVendor
	nSlots
)

// set appends k: v to o unless v is absent. The documents are built with
// Append: every key is new, so SetKey's search for an existing one would
// be wasted.
func set(o *plugins.Object, k string, v any) {
	if v != nil {
		o.Append(k, v)
	}
}

func count(vs ...any) int {
	n := 0
	for _, v := range vs {
		if v != nil {
			n++
		}
	}
	return n
}

// build assembles the ECS document.
func (d *ecsDoc) build(ds *datasetInfo) *plugins.Object {
	var sizes [nSlots]int
	sizes[oEvent] = 9 + count(d.provider, d.action, d.code, d.original)
	sizes[oAccount] = count(d.accountID)
	sizes[oProject] = count(d.projectID, d.projectName)
	sizes[oService] = count(d.serviceName)
	sizes[oCloud] = 1 + count(d.region) + b2i(sizes[oAccount] > 0) + b2i(sizes[oProject] > 0) + b2i(sizes[oService] > 0)
	sizes[oOrg] = count(d.orgID)
	sizes[oGeo] = count(d.geoCountry)
	sizes[oSource] = count(d.sourceIP, d.sourcePort) + b2i(sizes[oGeo] > 0)
	sizes[oTarget] = count(d.targetID, d.targetName, d.targetFullName, d.targetEmail)
	sizes[oUser] = count(d.userID, d.userName, d.userFullName, d.userEmail, d.userDomain) + b2i(sizes[oTarget] > 0)
	sizes[oUA] = count(d.userAgent)
	sizes[oRelated] = 2 // the vendor namespace may add addresses
	sizes[oError] = count(d.errCode, d.errMessage)
	sizes[oECS] = 1
	if d.vendorSrc != nil {
		sizes[oVendor] = b2i(d.vendorSrc.Len()-d.nSkip > 0)
	}
	sizes[oRoot] = 5 + b2i(sizes[oOrg] > 0) + b2i(sizes[oSource] > 0) + b2i(sizes[oUser] > 0) +
		b2i(sizes[oUA] > 0) + b2i(sizes[oError] > 0) + sizes[oVendor]
	var objs [nSlots]*plugins.Object
	if d.arena != nil {
		d.arena.Alloc(objs[:], sizes[:])
	} else {
		plugins.AllocObjects(objs[:], sizes[:])
	}

	// The vendor namespace first: copying it also collects the addresses
	// it mentions for related.*.
	var inner *plugins.Object
	if sizes[oVendor] > 0 {
		d.budget = maxRelatedScan
		inner = d.fillVendor()
	}

	// One array holds event.category, event.type, related.ip, related.user.
	cat, typ := d.cls.category, d.cls.types
	arr := make([]any, len(cat)+len(typ)+len(d.relIP)+len(d.relUser))
	n := copy(arr, cat)
	catArr := arr[:n:n]
	m := n + copy(arr[n:], typ)
	typArr := arr[n:m:m]
	k := m + copy(arr[m:], d.relIP)
	ipArr := arr[m:k:k]
	copy(arr[k:], d.relUser)
	userArr := arr[k:]

	root := objs[oRoot]
	root.Append("@timestamp", d.timestamp)

	ev := objs[oEvent]
	ev.Append("id", d.eventID)
	ev.Append("kind", "event")
	ev.Append("module", ds.moduleV)
	ev.Append("dataset", ds.nameV)
	set(ev, "provider", d.provider)
	set(ev, "action", d.action)
	set(ev, "code", d.code)
	ev.Append("outcome", d.outcome)
	ev.Append("category", catArr)
	ev.Append("type", typArr)
	ev.Append("created", d.created)
	set(ev, "original", d.original)
	root.Append("event", ev)

	cl := objs[oCloud]
	cl.Append("provider", ds.moduleV)
	set(cl, "region", d.region)
	if sizes[oAccount] > 0 {
		objs[oAccount].Append("id", d.accountID)
		cl.Append("account", objs[oAccount])
	}
	if sizes[oProject] > 0 {
		set(objs[oProject], "id", d.projectID)
		set(objs[oProject], "name", d.projectName)
		cl.Append("project", objs[oProject])
	}
	if sizes[oService] > 0 {
		objs[oService].Append("name", d.serviceName)
		cl.Append("service", objs[oService])
	}
	root.Append("cloud", cl)

	if sizes[oOrg] > 0 {
		objs[oOrg].Append("id", d.orgID)
		root.Append("organization", objs[oOrg])
	}
	if sizes[oSource] > 0 {
		src := objs[oSource]
		set(src, "ip", d.sourceIP)
		set(src, "port", d.sourcePort)
		if sizes[oGeo] > 0 {
			objs[oGeo].Append("country_iso_code", d.geoCountry)
			src.Append("geo", objs[oGeo])
		}
		root.Append("source", src)
	}
	if sizes[oUser] > 0 {
		u := objs[oUser]
		set(u, "id", d.userID)
		set(u, "name", d.userName)
		set(u, "full_name", d.userFullName)
		set(u, "email", d.userEmail)
		set(u, "domain", d.userDomain)
		if sizes[oTarget] > 0 {
			tg := objs[oTarget]
			set(tg, "id", d.targetID)
			set(tg, "name", d.targetName)
			set(tg, "full_name", d.targetFullName)
			set(tg, "email", d.targetEmail)
			u.Append("target", tg)
		}
		root.Append("user", u)
	}
	if sizes[oUA] > 0 {
		objs[oUA].Append("original", d.userAgent)
		root.Append("user_agent", objs[oUA])
	}
	if len(d.relIP) > 0 || len(d.relUser) > 0 {
		rel := objs[oRelated]
		if len(ipArr) > 0 {
			rel.Append("ip", ipArr)
		}
		if len(userArr) > 0 {
			rel.Append("user", userArr)
		}
		root.Append("related", rel)
	}
	if sizes[oError] > 0 {
		set(objs[oError], "code", d.errCode)
		set(objs[oError], "message", d.errMessage)
		root.Append("error", objs[oError])
	}
	objs[oECS].Append("version", Version)
	root.Append("ecs", objs[oECS])
	if sizes[oVendor] > 0 && inner.Len() > 0 {
		objs[oVendor].Append(ds.vendorKey, inner)
		root.Append(ds.module, objs[oVendor])
	}
	return root
}

// fillVendor copies the raw item into the vendor namespace object, without
// the consumed members, nulls, empty strings and objects left empty, and
// collects the addresses it mentions (scanString).
func (d *ecsDoc) fillVendor() *plugins.Object {
	src := d.vendorSrc
	// A key renamed only when the new name is free (checked before the
	// members are rewritten).
	rename := d.renameFrom != ""
	if rename {
		_, dup := src.GetKey(d.renameTo)
		rename = !dup
	}
	// The raw item belongs to the transform: it becomes the vendor
	// namespace in place, without the members ECS took.
	src.Rewrite(func(i int, k string, v any) (string, any, bool) {
		if d.skip[i] {
			return "", nil, false
		}
		if i == d.subIdx {
			sub := d.subSrc
			sub.Rewrite(func(j int, k string, v any) (string, any, bool) {
				if d.subSkip[j] {
					return "", nil, false
				}
				c, ok := d.clean(v)
				return k, c, ok
			})
			return k, sub, sub.Len() > 0
		}
		if rename && k == d.renameFrom {
			k = d.renameTo
		}
		c, ok := d.clean(v)
		return k, c, ok
	})
	return src
}

// clean returns v without nulls, empty strings and objects left empty, at
// every depth, reusing v's objects where nothing is removed (the raw item
// belongs to the transform); keep is false when v itself should go. On the
// way it collects addresses for related.*.
func (d *ecsDoc) clean(v any) (out any, keep bool) {
	switch t := v.(type) {
	case nil:
		return nil, false
	case string:
		if t == "" {
			return nil, false
		}
		d.scanString(t, v)
		return v, true
	case *plugins.Object:
		o, ok := d.cleanObject(t)
		return o, ok
	case []any:
		d.cleanArray(t)
		return v, true
	}
	return v, true
}

// cleanArray cleans the objects inside an array in place; the array keeps
// its length (positions may matter).
func (d *ecsDoc) cleanArray(t []any) {
	for i, e := range t {
		switch et := e.(type) {
		case string:
			d.scanString(et, e)
		case *plugins.Object:
			if o, ok := d.cleanObject(et); ok {
				t[i] = o
			} else {
				t[i] = plugins.NewObject(0)
			}
		case []any:
			d.cleanArray(et)
		}
	}
}

func (d *ecsDoc) cleanObject(o *plugins.Object) (*plugins.Object, bool) {
	if o == nil {
		return nil, false
	}
	drop := 0
	for i := 0; i < o.Len(); i++ {
		switch t := o.Value(i).(type) {
		case nil:
			drop++
		case string:
			if t == "" {
				drop++
			} else {
				d.scanString(t, o.Value(i))
			}
		case *plugins.Object:
			c, ok := d.cleanObject(t)
			if !ok {
				o.SetValue(i, nil)
				drop++
			} else if c != t {
				o.SetValue(i, c)
			}
		case []any:
			d.cleanArray(t)
		}
	}
	if drop == 0 {
		return o, o.Len() > 0
	}
	if drop == o.Len() {
		return nil, false
	}
	out := plugins.NewObject(o.Len() - drop)
	for i := 0; i < o.Len(); i++ {
		if v := o.Value(i); !isEmpty(v) {
			out.Append(o.Key(i), v)
		}
	}
	return out, true
}

// maxRelatedScan bounds the strings scanString looks at in one document.
const maxRelatedScan = 512

// scanString adds s (v is its box) to related.ip or related.user when it
// is, as a whole, an IP address or an email address: a login, a target's
// email, an address inside NHN's request. related.* so holds every address
// the event mentions, as ECS intends; addresses inside longer text are the
// mask transform's business.
func (d *ecsDoc) scanString(s string, v any) {
	if d.budget <= 0 || len(s) < 3 || len(s) > 320 {
		return
	}
	d.budget--
	if strings.IndexByte(s, '@') > 0 {
		if _, ok := emailDomain(s); ok {
			d.relUser = addRelated(d.relUser, v)
		}
		return
	}
	if validIP(s) {
		d.relIP = addRelated(d.relIP, v)
	}
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ---- value helpers ----

// textV returns v as a string, and boxed, when it is a JSON string or
// number (ids and codes sometimes arrive as numbers); a string value is
// returned as the same box, so copying it allocates nothing.
func textV(v any) (string, any) {
	switch t := v.(type) {
	case string:
		if t == "" {
			return "", nil
		}
		return t, v
	case plugins.Number:
		s := string(t)
		return s, s
	case int:
		s := strconv.Itoa(t)
		return s, s
	case int64:
		s := strconv.FormatInt(t, 10)
		return s, s
	}
	return "", nil
}

// strV returns v when it is a non-empty string, with its box.
func strV(v any) (string, any) {
	if s, ok := v.(string); ok && s != "" {
		return s, v
	}
	return "", nil
}

// str returns v when it is a string.
func str(v any) string {
	s, _ := v.(string)
	return s
}

// validIP reports whether s is an IP address as ECS `ip` fields accept it.
// A byte scan rules out most strings first: netip.ParseAddr allocates an
// error for every string it refuses.
func validIP(s string) bool {
	if len(s) < 2 || len(s) > 64 || !ipShaped(s) {
		return false
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}

// ipShaped reports whether s is made of the characters of an IPv4 address
// (digits, three dots) or of an IPv6 address (hex digits, colons, dots,
// and anything after a % zone).
func ipShaped(s string) bool {
	dots, colons := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
		case c == '.':
			dots++
		case c == ':':
			colons++
		case c == '%':
			return colons >= 2
		case isHex(c):
			if colons == 0 && dots > 0 {
				return false
			}
		default:
			return false
		}
	}
	return colons >= 2 || (dots == 3 && colons == 0 && s[0] >= '0' && s[0] <= '9')
}

// splitHostPort accepts "1.2.3.4:443" and "[2001:db8::1]:443".
func splitHostPort(s string) (string, int, bool) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return "", 0, false
	}
	return ap.Addr().String(), int(ap.Port()), true
}

// emailDomain returns the domain of an email address (local@domain.tld).
func emailDomain(s string) (string, bool) {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.IndexByte(s, '@') != at || len(s) > 320 {
		return "", false
	}
	dom := s[at+1:]
	if strings.IndexByte(dom, '.') <= 0 || dom[len(dom)-1] == '.' {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '<' || c == '>' || c == '(' || c == ')' || c == ',' || c == ';' || c == '"' {
			return "", false
		}
	}
	return dom, true
}

// isCountryCode reports an ISO 3166-1 alpha-2 code (two upper-case letters).
func isCountryCode(s string) bool {
	return len(s) == 2 && isUpper(s[0]) && isUpper(s[1])
}

// ---- cleaning of the vendor namespace ----

// isEmpty reports the values the vendor namespace drops: null and "".
func isEmpty(v any) bool {
	switch t := v.(type) {
	case nil:
		return true
	case string:
		return t == ""
	}
	return false
}
