package ecs

import (
	"strconv"
	"time"

	"github.com/auditforwarder/forwarder/plugins"
)

// appendTimestamp appends t as RFC 3339 in UTC with exactly three
// fraction digits (2024-10-10T03:09:45.024Z), the form of @timestamp and
// event.created. Years outside 0000..9999 cannot be written that way; they
// fall back to time's RFC 3339 form, which the contract check rejects.
func appendTimestamp(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, time.RFC3339Nano)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / int(time.Millisecond)
	dst = append4(dst, year)
	dst = append(dst, '-')
	dst = append2(dst, int(month))
	dst = append(dst, '-')
	dst = append2(dst, day)
	dst = append(dst, 'T')
	dst = append2(dst, hour)
	dst = append(dst, ':')
	dst = append2(dst, minute)
	dst = append(dst, ':')
	dst = append2(dst, sec)
	dst = append(dst, '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	return dst
}

func append2(dst []byte, v int) []byte { return append(dst, byte('0'+v/10), byte('0'+v%10)) }

func append4(dst []byte, v int) []byte {
	return append(dst, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}

// parseEpochMillis reads NCP's eventTime: epoch milliseconds as a JSON
// number (or, leniently, a string of digits).
func parseEpochMillis(v any) (time.Time, bool) {
	var ms int64
	switch t := v.(type) {
	case plugins.Number:
		n, ok := parseIntText(string(t))
		if !ok {
			return time.Time{}, false
		}
		ms = n
	case string:
		n, ok := parseIntText(t)
		if !ok {
			return time.Time{}, false
		}
		ms = n
	case int:
		ms = int64(t)
	case int64:
		ms = t
	case float64:
		if t != float64(int64(t)) {
			return time.Time{}, false
		}
		ms = int64(t)
	default:
		return time.Time{}, false
	}
	// Refuse values that cannot be written as a four-digit year.
	if ms < -62135596800000 || ms > 253402300799999 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// parseIntText parses an integer written as a JSON number, allowing an
// integral float form such as 1.7e12.
func parseIntText(s string) (int64, bool) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != float64(int64(f)) {
		return 0, false
	}
	return int64(f), true
}

// parseISOTime reads NHN's eventTime: 2019-09-04T10:31:49.348+0000. It
// also accepts any number of fraction digits (or none), Z, and offsets
// written +09:00, +0900 or +09.
func parseISOTime(s string) (time.Time, bool) {
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || s[13] != ':' || s[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	if day > daysIn(time.Month(month), year) {
		return time.Time{}, false
	}
	rest := s[19:]
	nsec := 0
	if len(rest) > 0 && (rest[0] == '.' || rest[0] == ',') {
		i := 1
		scale := 100000000
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			nsec += int(rest[i]-'0') * scale
			scale /= 10
			i++
		}
		if i == 1 {
			return time.Time{}, false
		}
		rest = rest[i:]
	}
	offset := 0
	switch {
	case rest == "Z" || rest == "z":
	case len(rest) >= 3 && (rest[0] == '+' || rest[0] == '-'):
		oh, ok := digits(rest[1:3])
		if !ok {
			return time.Time{}, false
		}
		om := 0
		switch tail := rest[3:]; len(tail) {
		case 0:
		case 2:
			om, ok = digits(tail)
		case 3:
			if tail[0] != ':' {
				return time.Time{}, false
			}
			om, ok = digits(tail[1:])
		default:
			return time.Time{}, false
		}
		if !ok || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = (oh*60 + om) * 60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	if sec == 60 { // leap second: keep it within the minute
		sec, nsec = 59, 999999999
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
	return t.Add(-time.Duration(offset) * time.Second), true
}

func digits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(m time.Month, year int) int {
	switch m {
	case time.February:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}
