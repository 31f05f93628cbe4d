package ncloud

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
)

// Headers of the NCP API gateway's authentication.
const (
	HeaderTimestamp = "x-ncp-apigw-timestamp"
	HeaderAccessKey = "x-ncp-iam-access-key"
	HeaderSignature = "x-ncp-apigw-signature-v2"
	HeaderTraceID   = "x-ncp-trace-id"
)

// Sign returns the x-ncp-apigw-signature-v2 value of a request: the
// base64 HMAC-SHA256, keyed with the secret key, of
// method + " " + uri + "\n" + timestamp + "\n" + accessKey, where uri is the
// path with its query string and timestamp the Unix time in milliseconds.
func Sign(method, uri string, timestampMs int64, accessKey, secretKey string) string {
	mac := hmac.New(sha256.New, []byte(secretKey))
	buf := make([]byte, 0, len(method)+len(uri)+len(accessKey)+24)
	buf = append(buf, method...)
	buf = append(buf, ' ')
	buf = append(buf, uri...)
	buf = append(buf, '\n')
	buf = strconv.AppendInt(buf, timestampMs, 10)
	buf = append(buf, '\n')
	buf = append(buf, accessKey...)
	mac.Write(buf)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// SignRequest sets the three authentication headers on req.
func SignRequest(req *http.Request, timestampMs int64, accessKey, secretKey string) {
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(timestampMs, 10))
	req.Header.Set(HeaderAccessKey, accessKey)
	req.Header.Set(HeaderSignature, Sign(req.Method, req.URL.RequestURI(), timestampMs, accessKey, secretKey))
}
