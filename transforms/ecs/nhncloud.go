package ecs

import (
	"strings"

	"github.com/auditforwarder/forwarder/plugins"
)

// NHN item keys the mapper reads (see api-docs CloudTrail).
const (
	nhnEventTime    = "eventTime"
	nhnUserIDNo     = "userIdNo"
	nhnUserIP       = "userIp"
	nhnUserAgent    = "userAgent"
	nhnUserName     = "userName"
	nhnUserID       = "userId"
	nhnUserIDAlt    = "UserId" // so spelled in the docs' field table
	nhnRegion       = "region"
	nhnOrgID        = "orgId"
	nhnProjectID    = "projectId"
	nhnProjectName  = "projectName"
	nhnEventID      = "eventId"
	nhnEventLogUUID = "eventLogUuid"
	nhnRequest      = "request"
	nhnResponse     = "response"
	nhnEventTarget  = "eventTarget"
)

// Members of an NHN item moved unchanged into single ECS fields.
const (
	mUserIDNo = iota
	mUserIP
	mUserAgent
	mUserName
	mRegion
	mOrgID
	mProjectID
	mProjectName
	nhnMoved
)

// eventIDPrefix starts every NHN eventId.
const eventIDPrefix = "event_id."

// mapNHN maps an NHN Cloud CloudTrail item (API v1.0 or v2.0).
func (t *transform) mapNHN(ev *plugins.Event, item *plugins.Object) *plugins.Object {
	d := &t.doc
	d.reset(item.Len())
	d.created = t.created(ev)
	var (
		eventTime, userIP, userID, eventID, uuid                    string
		userIDNoV, userIPV, userAgentV, userNameV, userIDV, regionV any
		orgIDV, projectIDV, projectNameV, eventIDV, uuidV           any
		iUserID, iTime, iUUID, iEventID                             = -1, -1, -1, -1
		eventTarget                                                 *plugins.Object
		reqIdx, respIdx                                             = -1, -1
	)
	at := [nhnMoved]int{-1, -1, -1, -1, -1, -1, -1, -1} // positions of the moved members
	for i, n := 0, item.Len(); i < n; i++ {
		v := item.Value(i)
		switch item.Key(i) {
		case nhnEventTime:
			eventTime, iTime = str(v), i
		case nhnUserIDNo:
			_, userIDNoV = strV(v)
			at[mUserIDNo] = i
		case nhnUserIP:
			userIP, userIPV = strV(v)
			at[mUserIP] = i
		case nhnUserAgent:
			_, userAgentV = strV(v)
			at[mUserAgent] = i
		case nhnUserName:
			_, userNameV = strV(v)
			at[mUserName] = i
		case nhnUserID, nhnUserIDAlt:
			if userIDV == nil {
				userID, userIDV = strV(v)
				iUserID = i
			}
		case nhnRegion:
			_, regionV = strV(v)
			at[mRegion] = i
		case nhnOrgID:
			_, orgIDV = strV(v)
			at[mOrgID] = i
		case nhnProjectID:
			_, projectIDV = strV(v)
			at[mProjectID] = i
		case nhnProjectName:
			_, projectNameV = strV(v)
			at[mProjectName] = i
		case nhnEventID:
			eventID, eventIDV = strV(v)
			iEventID = i
		case nhnEventLogUUID:
			uuid, uuidV = textV(v)
			iUUID = i
		case nhnRequest:
			reqIdx = i
		case nhnResponse:
			respIdx = i
		case nhnEventTarget:
			eventTarget, _ = v.(*plugins.Object)
		}
	}

	if t.cfg.KeepOriginal {
		d.original = t.original(item)
	}

	switch {
	case uuid != "":
		d.eventID = uuidV
	case ev.Meta.ID != "":
		d.eventID = ev.Meta.ID
	default:
		// v1.0 items have no id: the fingerprint every source uses.
		d.eventID = plugins.Fingerprint(item)
	}

	// request / response: JSON documents carried as strings.
	if reqIdx >= 0 {
		item.SetValue(reqIdx, parseEmbedded(item.Value(reqIdx)))
	}
	d.outcome = "unknown"
	if respIdx >= 0 {
		resp := t.parseResponse(item.Value(respIdx))
		item.SetValue(respIdx, resp)
		t.nhnOutcome(resp)
	}

	if ts, ok := parseISOTime(eventTime); ok {
		d.timestamp = t.formatTime(ts)
		d.consume(iTime)
		if ev.Meta.Time.IsZero() {
			ev.Meta.Time = ts
		}
	} else {
		d.timestamp = t.fallbackTimestamp(ev)
	}
	if uuid != "" {
		d.consume(iUUID)
	}

	// eventId: event_id.iam.member.role.update → code as sent, action
	// without the prefix, provider = the product segment.
	var action string
	if eventIDV != nil {
		na := t.nhnEventID(eventID)
		d.code = eventIDV
		d.action, d.provider, d.serviceName = na.action, na.provider, na.provider
		action = na.actionText
		d.consume(iEventID)
	}

	moved := func(m int, v any) any {
		if v != nil {
			d.consume(at[m])
		}
		return v
	}
	d.userID = moved(mUserIDNo, userIDNoV)
	d.userFullName = moved(mUserName, userNameV)
	if userIDV != nil {
		t.setUser(userID, userIDV)
		d.consume(iUserID)
	}
	if validIP(userIP) {
		d.sourceIP = moved(mUserIP, userIPV)
		d.relIP = addRelated(d.relIP, userIPV)
	} else if host, port, ok := splitHostPort(userIP); ok {
		d.sourceIP, d.sourcePort = host, port
		d.relIP = addRelated(d.relIP, d.sourceIP)
	}
	d.userAgent = moved(mUserAgent, userAgentV)
	d.region = moved(mRegion, regionV)
	d.orgID = moved(mOrgID, orgIDV)
	d.accountID = orgIDV
	d.projectID = moved(mProjectID, projectIDV)
	d.projectName = moved(mProjectName, projectNameV)

	if eventTarget != nil {
		t.nhnTargets(eventTarget)
	}

	d.cls = t.rules.classify(dsNHN, action)

	d.vendorSrc = item
	return d.build(nhnInfo)
}

// nhnAction is what an eventId gives, boxed once per distinct eventId.
type nhnAction struct {
	action, provider any
	actionText       string
}

// nhnEventID splits event_id.iam.member.role.update into the action
// (iam.member.role.update) and the provider (iam), caching the result.
func (t *transform) nhnEventID(id string) *nhnAction {
	if na, ok := t.nhnActions[id]; ok {
		return na
	}
	id = strings.Clone(id) // do not pin the input the id came from
	action := strings.TrimPrefix(id, eventIDPrefix)
	prov := action
	if dot := strings.IndexByte(prov, '.'); dot >= 0 {
		prov = prov[:dot]
	}
	na := &nhnAction{action: action, provider: prov, actionText: action}
	if prov == "" {
		na.provider = nil
	}
	if len(t.nhnActions) >= maxCacheEntries {
		clear(t.nhnActions)
	}
	t.nhnActions[id] = na
	return na
}

// parseEmbedded returns the object or array a JSON string holds, or v
// unchanged when it is not a string holding one.
func parseEmbedded(v any) any {
	s, ok := v.(string)
	if !ok {
		return v
	}
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	if i == len(s) || (s[i] != '{' && s[i] != '[') {
		return v
	}
	p, err := plugins.ParseValue([]byte(s))
	if err != nil {
		return v
	}
	return p
}

// maxCachedResponse is the longest response string kept parsed in the
// response cache: the common ones are bare result headers.
const maxCachedResponse = 256

// parseResponse is parseEmbedded for `response`, which mostly repeats a
// handful of result headers: those are parsed once, and each event gets
// its own copy (a copy costs less than parsing, and documents never share
// objects).
func (t *transform) parseResponse(v any) any {
	s, ok := v.(string)
	if !ok || len(s) > maxCachedResponse {
		return parseEmbedded(v)
	}
	if o, ok := t.responses[s]; ok {
		return o.Clone()
	}
	p := parseEmbedded(v)
	o, ok := p.(*plugins.Object)
	if !ok {
		return p
	}
	if len(t.responses) >= maxCacheEntries {
		clear(t.responses)
	}
	t.responses[strings.Clone(s)] = o // kept pristine: only copies leave the cache
	return o.Clone()
}

// nhnOutcome sets event.outcome (and error.* on failure) from the
// response's header: isSuccessful, resultCode, resultMessage.
func (t *transform) nhnOutcome(resp any) {
	d := &t.doc
	ro, ok := resp.(*plugins.Object)
	if !ok {
		return
	}
	hv, _ := ro.GetKey("header")
	h, ok := hv.(*plugins.Object)
	if !ok {
		return
	}
	succ, _ := h.GetKey("isSuccessful")
	switch succ {
	case true, "true":
		d.outcome = "success"
	case false, "false":
		d.outcome = "failure"
		if c, ok := h.GetKey("resultCode"); ok {
			_, d.errCode = textV(c)
		}
		if m, ok := h.GetKey("resultMessage"); ok {
			_, d.errMessage = strV(m)
		}
	}
}

// nhnTargets maps the first target member to user.target.* and every
// member's user code and email address to related.user. The members stay
// whole under nhncloud.cloudtrail.eventTarget.
func (t *transform) nhnTargets(target *plugins.Object) {
	d := &t.doc
	mv, _ := target.GetKey("targetMembers")
	members, _ := mv.([]any)
	first := true
	for _, m := range members {
		mo, ok := m.(*plugins.Object)
		if !ok {
			continue
		}
		var email string
		var idNoV, nameV, userCodeV, emailV any
		for i, n := 0, mo.Len(); i < n; i++ {
			switch mo.Key(i) {
			case "idNo":
				_, idNoV = textV(mo.Value(i))
			case "name":
				_, nameV = strV(mo.Value(i))
			case "userCode":
				_, userCodeV = textV(mo.Value(i))
			case "emailAddress":
				email, emailV = strV(mo.Value(i))
			}
		}
		if first && (idNoV != nil || nameV != nil || userCodeV != nil || emailV != nil) {
			first = false
			d.targetID = idNoV
			d.targetFullName = nameV
			d.targetName = userCodeV
			if d.targetName == nil {
				d.targetName = emailV
			}
			if _, ok := emailDomain(email); ok {
				d.targetEmail = emailV
			}
		}
		d.relUser = addRelated(d.relUser, userCodeV)
		d.relUser = addRelated(d.relUser, emailV)
	}
}
