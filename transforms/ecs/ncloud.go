package ecs

import (
	"strings"

	"github.com/auditforwarder/forwarder/plugins"
)

// NCP item keys the mapper reads (see api-docs GetActivityList).
const (
	ncpHistoryID    = "historyId"
	ncpNRN          = "nrn"
	ncpEventTime    = "eventTime"
	ncpProductName  = "productName"
	ncpRegionCode   = "regionCode"
	ncpRegionName   = "regionDisplayName"
	ncpRegionTypo   = "regionDispalyName" // spelled so in one place of the docs
	ncpResourceType = "resourceType"
	ncpAction       = "actionDisplayName"
	ncpResult       = "actionResultType"
	ncpUserType     = "actionUserType"
	ncpSubAccountNo = "actionSubAccountNo"
	ncpSourceIP     = "sourceIp"
	ncpProductData  = "productData"
)

// mapNCP maps a NAVER Cloud Activity Tracer item.
func (t *transform) mapNCP(ev *plugins.Event, item *plugins.Object) *plugins.Object {
	d := &t.doc
	d.reset(item.Len())
	d.created = t.created(ev)
	var (
		historyID, nrn, productName, resourceType, action, result, userType, sourceIP string
		historyIDV, productNameV, regionCodeV, actionV, subAccountNoV, sourceIPV      any
		eventTime                                                                     any
		productData                                                                   *plugins.Object
		typo                                                                          bool
	)
	// positions of the members that may be consumed
	iHistory, iTime, iProduct, iRegion, iAction, iResult, iSubNo, iIP, iData := -1, -1, -1, -1, -1, -1, -1, -1, -1
	for i, n := 0, item.Len(); i < n; i++ {
		v := item.Value(i)
		switch item.Key(i) {
		case ncpHistoryID:
			historyID, historyIDV = textV(v)
			iHistory = i
		case ncpNRN:
			nrn = str(v)
		case ncpEventTime:
			eventTime, iTime = v, i
		case ncpProductName:
			productName, productNameV = strV(v)
			iProduct = i
		case ncpRegionCode:
			_, regionCodeV = strV(v)
			iRegion = i
		case ncpResourceType:
			resourceType = str(v)
		case ncpAction:
			action, actionV = strV(v)
			iAction = i
		case ncpResult:
			result, iResult = str(v), i
		case ncpUserType:
			userType = str(v)
		case ncpSubAccountNo:
			_, subAccountNoV = textV(v)
			iSubNo = i
		case ncpSourceIP:
			sourceIP, sourceIPV = strV(v)
			iIP = i
		case ncpProductData:
			productData, _ = v.(*plugins.Object)
			iData = i
		case ncpRegionTypo:
			typo = true
		}
	}

	if t.cfg.KeepOriginal {
		d.original = t.original(item)
	}

	// event.id: the API's id, else the id the source computed, else the fingerprint.
	switch {
	case historyID != "":
		d.eventID = historyIDV
		d.consume(iHistory)
	case ev.Meta.ID != "":
		d.eventID = ev.Meta.ID
	default:
		d.eventID = plugins.Fingerprint(item)
	}

	if ts, ok := parseEpochMillis(eventTime); ok {
		d.timestamp = t.formatTime(ts)
		d.consume(iTime)
		if ev.Meta.Time.IsZero() {
			ev.Meta.Time = ts
		}
	} else {
		d.timestamp = t.fallbackTimestamp(ev)
	}

	if productNameV != nil {
		d.provider = productNameV
		d.serviceName = productNameV
		d.consume(iProduct)
	}
	if regionCodeV != nil {
		d.region = regionCodeV
		d.consume(iRegion)
	}
	if actionV != nil {
		d.action = actionV
		d.consume(iAction)
	}
	switch {
	case strings.EqualFold(result, "SUCCESS"):
		d.outcome = "success"
		d.consume(iResult)
	case strings.EqualFold(result, "FAIL"):
		d.outcome = "failure"
		d.consume(iResult)
	default:
		d.outcome = "unknown"
	}
	if acct := nrnAccount(nrn); acct != "" {
		d.accountID = t.intern(acct)
	}

	// Actor: a sub account's number is the user id.
	if subAccountNoV != nil && (userType == "" || strings.EqualFold(userType, "Sub")) {
		d.userID = subAccountNoV
		d.consume(iSubNo)
	}

	if validIP(sourceIP) {
		d.sourceIP = sourceIPV
		d.relIP = addRelated(d.relIP, sourceIPV)
		d.consume(iIP)
	}

	// productData: login details carry the user, the client and its country.
	if productData != nil {
		d.setSub(iData, productData)
		t.ncpProductData(productData, sourceIP)
	}

	d.cls = t.rules.classify(dsNCP, action, resourceType, productName)

	if typo { // one spelling for consumers
		d.renameFrom, d.renameTo = ncpRegionTypo, ncpRegionName
	}
	// Everything not copied as is into an ECS field stays under
	// ncloud.activity_tracer, unrenamed, without nulls and empty strings.
	d.vendorSrc = item
	return d.build(ncpInfo)
}

// ncpProductData maps the login fields of productData and removes from it
// those copied unchanged into ECS fields.
func (t *transform) ncpProductData(pd *plugins.Object, sourceIP string) {
	d := &t.doc
	var userName, clientIP string
	var userAgentV, userNameV, clientIPV, countryV any
	iUA, iName, iClient, iCountry := -1, -1, -1, -1
	for i, n := 0, pd.Len(); i < n; i++ {
		switch pd.Key(i) {
		case "userAgent":
			_, userAgentV = strV(pd.Value(i))
			iUA = i
		case "userName":
			userName, userNameV = strV(pd.Value(i))
			iName = i
		case "clientIp":
			clientIP, clientIPV = strV(pd.Value(i))
			iClient = i
		case "clientIpCountry":
			if c, v := strV(pd.Value(i)); isCountryCode(c) {
				countryV, iCountry = v, i
			}
		}
	}
	if userAgentV != nil {
		d.userAgent = userAgentV
		d.consumeSub(iUA)
	}
	if userNameV != nil {
		t.setUser(userName, userNameV)
		d.consumeSub(iName)
	}
	if validIP(clientIP) {
		d.relIP = addRelated(d.relIP, clientIPV)
		if d.sourceIP == nil {
			d.sourceIP = clientIPV
			sourceIP = clientIP
		}
		if sourceIP == clientIP {
			d.consumeSub(iClient)
		}
	}
	if countryV != nil {
		d.geoCountry = countryV
		d.consumeSub(iCountry)
	}
}

// nrnAccount returns the account segment of an NRN
// (nrn:PUB:Service:Region:Account:Resource), unless the API masked it.
func nrnAccount(nrn string) string {
	if !strings.HasPrefix(nrn, "nrn:") {
		return ""
	}
	s := nrn
	for range 4 {
		i := strings.IndexByte(s, ':')
		if i < 0 {
			return ""
		}
		s = s[i+1:]
	}
	end := strings.IndexByte(s, ':')
	if end < 0 {
		return ""
	}
	acct := s[:end]
	if strings.Trim(acct, "*") == "" {
		return ""
	}
	return acct
}
