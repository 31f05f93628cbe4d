// Command genarchive writes a synthetic NDJSON archive of realistic raw API
// items (about 900 bytes each) for the file source, for benchmarks:
//
//	go run ./sources/file/internal/genarchive -n 200000 -dataset ncloud.activity_tracer -o /tmp/ncp.ndjson
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"time"
)

type action struct{ product, resourceType, name string }

var ncpActions = []action{
	{"Account", "Customer", "Login"},
	{"Account", "SubAccount", "Login"},
	{"SubAccount", "SubAccount", "Create Sub Account"},
	{"SubAccount", "AccessKey", "Create Access Key"},
	{"SubAccount", "Role", "Create Role"},
	{"SubAccount", "SubAccount", "Attach Policy To Sub Account"},
	{"Server", "Server", "Create Server Instance"},
	{"Server", "Server", "Terminate Server Instance"},
	{"Server", "Server", "Stop Server Instance"},
	{"VPC", "ACG", "Add ACG Inbound Rule"},
	{"VPC", "NetworkACL", "Delete Network ACL"},
	{"VPC", "RouteTable", "Change Route Table Subnet"},
	{"LoadBalancer", "LoadBalancerInstance", "Create Load Balancer Instance"},
	{"ObjectStorage", "Bucket", "Delete Bucket"},
	{"SecureZone", "Member", "Add Member"},
}

var nhnEvents = []string{
	"event_id.iam.member.role.update", "event_id.iam.member.login", "event_id.iaas.instance.create",
	"event_id.iaas.instance.delete", "event_id.iaas.security_group_rule.create", "event_id.org.project.member.add",
	"event_id.iam.user_access_key.create", "event_id.iaas.loadbalancer.delete",
}

var agents = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0",
}

func main() {
	n := flag.Int("n", 200000, "number of items")
	dataset := flag.String("dataset", "ncloud.activity_tracer", "ncloud.activity_tracer or nhncloud.cloudtrail")
	out := flag.String("o", "archive.ndjson", "output file")
	flag.Parse()
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Date(2024, 10, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	total := 0
	var line []byte
	for i := 0; i < *n; i++ {
		ms := start + int64(i)*137
		if *dataset == "nhncloud.cloudtrail" {
			line = nhnItem(line[:0], rng, i, ms)
		} else {
			line = ncpItem(line[:0], rng, i, ms)
		}
		total += len(line)
		w.Write(line)
	}
	if err := w.Flush(); err == nil {
		err = f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "%d items, %d bytes (%d per item) in %s\n", *n, total, total / *n, *out)
}

func ip(rng *rand.Rand) string {
	return "203.0." + strconv.Itoa(rng.IntN(256)) + "." + strconv.Itoa(1+rng.IntN(254))
}

func ncpItem(b []byte, rng *rand.Rand, i int, ms int64) []byte {
	a := ncpActions[rng.IntN(len(ncpActions))]
	sub := rng.IntN(3) == 0
	userType, subNo := "Customer", ""
	if sub {
		userType, subNo = "Sub", `,"actionSubAccountNo":`+strconv.Itoa(2000000+rng.IntN(9999))
	}
	src := ip(rng)
	user := fmt.Sprintf("user%03d@example.co.kr", rng.IntN(500))
	b = fmt.Appendf(b, `{"historyId":"6712f0a1e2a3%012x","nrn":"nrn:PUB:%s:KR:2401234:%s/%d","eventTime":%d,"platformType":"VPC",`+
		`"productName":"%s","productDisplayName":"%s","regionCode":"KR","regionDisplayName":"Korea","resourceType":"%s",`+
		`"resourceId":"%d","resourceName":"res-%d","actionDisplayName":"%s","actionResultType":"%s","actionUserType":"%s"%s,`+
		`"sourceType":"CONSOLE","sourceIp":"%s","productData":{"twoFactorLoginType":"PHONE","twoFactorLoginManagerName":"*dong Hong",`+
		`"twoFactorLoginInfo":"+82-010********","clientIpCountry":"KR",`+
		`"isSuccess":"true","clientIp":"%s","loginLevel":"2","userAgent":"%s","userType":"CUSTOMER","userName":"%s",`+
		`"memberNo":"%d","instanceNo":"%d"}}`+"\n",
		i, a.product, a.resourceType, 28500000+i%100000, ms,
		a.product, a.product, a.resourceType, 28500000+i%100000, i%1000, a.name,
		[]string{"SUCCESS", "SUCCESS", "SUCCESS", "FAIL"}[rng.IntN(4)], userType, subNo,
		src, src, agents[rng.IntN(len(agents))], user, 2401234, 26950604+rng.IntN(1000))
	return b
}

func nhnItem(b []byte, rng *rand.Rand, i int, ms int64) []byte {
	ev := nhnEvents[rng.IntN(len(nhnEvents))]
	t := time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000-0700")
	ok := rng.IntN(8) != 0
	b = fmt.Appendf(b, `{"eventTime":"%s","userIdNo":"8f0c2b7e-1d2a-4c55-9e61-%012x","userIp":"%s","userAgent":"%s",`+
		`"userName":"Kim Minsu","userId":"user%03d@example.com","eventSourceType":"CONSOLE","productId":"Tc9fYyGm","region":"KR1",`+
		`"orgId":"Q2mVxW8eT4rYu1Io","projectId":"pJ7kL0aZ","projectName":"payments-prod","eventId":"%s",`+
		`"eventLogUuid":"5a1d6a8e-2f3b-4c1d-9e8f-%012x","request":"{\"id\":\"%d\",\"productId\":\"M0XnzOFE\"}",`+
		`"response":"{\"header\":{\"resultCode\":%d,\"resultMessage\":\"%s\",\"isSuccessful\":%t}}",`+
		`"eventTarget":{"targetMembers":[{"idNo":"9c30dff8-53ba-4f18-8b44-%012x","name":"Lim kkukjeong","userCode":"user%03d","emailAddress":"target%03d@example.com"}]}}`+"\n",
		t, rng.IntN(1<<40), ip(rng), agents[rng.IntN(len(agents))], rng.IntN(500), ev, i, i,
		map[bool]int{true: 0, false: 40300}[ok], map[bool]string{true: "SUCCESS", false: "Permission denied."}[ok], ok,
		rng.IntN(1<<40), rng.IntN(500), rng.IntN(500))
	return b
}
