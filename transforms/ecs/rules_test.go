package ecs

import (
	"strconv"
	"strings"
	"testing"
)

// Every value the built-in table can produce is an ECS allowed value, and
// every rule's categories are ones ECS lists.
func TestBuiltinRulesUseAllowedValues(t *testing.T) {
	f, err := loadBuiltinRules()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Rules) < 5 || len(f.Verbs) < 3 {
		t.Fatalf("rules.yaml looks empty: %d rules, %d verb types", len(f.Rules), len(f.Verbs))
	}
	names := map[string]bool{}
	for i, r := range f.Rules {
		if r.Name == "" || names[r.Name] {
			t.Errorf("rule %d: name %q missing or repeated", i, r.Name)
		}
		names[r.Name] = true
		if err := r.Validate(); err != nil {
			t.Errorf("rule %q: %v", r.Name, err)
		}
		for _, c := range r.Category {
			if !allowedCategories[c] {
				t.Errorf("rule %q: category %q is not allowed by ECS %s", r.Name, c, Version)
			}
		}
		for _, typ := range r.Type {
			if !allowedTypes[typ] {
				t.Errorf("rule %q: type %q is not allowed by ECS %s", r.Name, typ, Version)
			}
		}
	}
	for typ := range f.Verbs {
		if !allowedTypes[typ] {
			t.Errorf("verbs: %q is not an ECS event.type allowed value", typ)
		}
	}
	for _, v := range []string{"configuration"} { // the default category
		if !allowedCategories[v] {
			t.Errorf("default category %q not allowed", v)
		}
	}
	if !allowedTypes["info"] {
		t.Error("default type info not allowed")
	}
}

// The embedded allowed-values list is ECS's: spot-check it, so an edit that
// empties or garbles it fails.
func TestAllowedValuesList(t *testing.T) {
	for _, c := range []string{"api", "authentication", "configuration", "iam", "network", "web", "email"} {
		if !allowedCategories[c] {
			t.Errorf("category %q missing", c)
		}
	}
	for _, typ := range []string{"admin", "change", "creation", "deletion", "group", "info", "start", "end", "user"} {
		if !allowedTypes[typ] {
			t.Errorf("type %q missing", typ)
		}
	}
	for _, bad := range []string{"login", "modification", "network_change", "create"} {
		if allowedCategories[bad] || allowedTypes[bad] {
			t.Errorf("%q must not be allowed", bad)
		}
	}
	if len(allowedCategoryList) != 20 || len(allowedTypeList) != 18 {
		t.Errorf("ECS %s has 20 categories and 18 types, the list has %d and %d", Version, len(allowedCategoryList), len(allowedTypeList))
	}
}

func TestClassify(t *testing.T) {
	c, err := newClassifier(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ds                  byte
		action              string
		res                 []string
		category, typ, rule string
	}{
		// logins
		{dsNCP, "Login", []string{"Customer", "Account"}, "authentication", "start", "login"},
		{dsNCP, "Logout", nil, "authentication", "end", "logout"},
		{dsNHN, "iam.member.login", nil, "authentication", "start", "login"},
		{dsNCP, "View Login History", nil, "configuration", "info", ""},
		{dsNCP, "Create Login Key", []string{"LoginKey", "Server"}, "configuration", "creation", "server-login-key"},
		{dsNHN, "iam.member.password.update", nil, "iam", "user,change", "credentials"},
		// IAM
		{dsNCP, "Create Sub Account", []string{"SubAccount", "SubAccount"}, "iam", "user,creation", "iam-user"},
		{dsNCP, "Create Access Key", []string{"AccessKey", "SubAccount"}, "iam", "user,creation", "iam-user"},
		{dsNCP, "Delete Sub Account", nil, "iam", "user,deletion", "iam-user"},
		{dsNCP, "Create Role", []string{"Role", "SubAccount"}, "iam", "admin,creation", "iam-admin"},
		{dsNCP, "Attach Policy To Sub Account", nil, "iam", "user,change", "iam-user"},
		{dsNCP, "Detach Policy", []string{"Policy", "SubAccount"}, "iam", "admin,change", "iam-admin"},
		{dsNCP, "Create Group", []string{"Group", "SubAccount"}, "iam", "group,creation", "iam-group"},
		{dsNHN, "iam.member.role.update", nil, "iam", "user,change", "iam-user"},
		{dsNHN, "org.project.member.add", nil, "iam", "user,creation", "iam-user"},
		{dsNHN, "iam.user_access_key.create", nil, "iam", "user,creation", "iam-user"},
		{dsNHN, "iam.role.create", nil, "iam", "admin,creation", "iam-admin"},
		// network
		{dsNCP, "Add ACG Inbound Rule", []string{"ACG", "VPC"}, "network,configuration", "creation", "network"},
		{dsNCP, "Delete Network ACL", nil, "network,configuration", "deletion", "network"},
		{dsNCP, "Change Route Table Subnet", nil, "network,configuration", "change", "network"},
		{dsNCP, "Create Load Balancer Instance", nil, "network,configuration", "creation", "network"},
		{dsNCP, "Create VPC", nil, "network,configuration", "creation", "network"},
		{dsNCP, "Set ACGRule", nil, "network,configuration", "change", "network"},
		{dsNHN, "iaas.security_group_rule.create", nil, "network,configuration", "creation", "network"},
		{dsNHN, "iaas.loadbalancer.delete", nil, "network,configuration", "deletion", "network"},
		// verbs, default
		{dsNCP, "Terminate Server Instance", []string{"Server", "Server"}, "configuration", "deletion", ""},
		{dsNCP, "Return Server", nil, "configuration", "deletion", ""},
		{dsNCP, "Remove Tag", nil, "configuration", "deletion", ""},
		{dsNCP, "Modify Server Spec", nil, "configuration", "change", ""},
		{dsNCP, "Update Bucket", nil, "configuration", "change", ""},
		{dsNCP, "Stop Server Instance", nil, "configuration", "info", ""},
		{dsNCP, "Auto Scaling Group Create", []string{"AutoScalingGroup", "AutoScaling"}, "configuration", "creation", ""},
		{dsNHN, "iaas.instance.create", nil, "configuration", "creation", ""},
		{dsNCP, "", nil, "configuration", "info", ""},
	}
	for _, tt := range tests {
		cl := c.classify(tt.ds, tt.action, tt.res...)
		cat, typ := cl.strings()
		if strings.Join(cat, ",") != tt.category || strings.Join(typ, ",") != tt.typ || cl.rule != tt.rule {
			t.Errorf("classify(%q, %q) = %v %v (rule %q), want %s %s (rule %q)",
				tt.action, tt.res, cat, typ, cl.rule, tt.category, tt.typ, tt.rule)
		}
		// Cached: the second call returns the same classification.
		if c.classify(tt.ds, tt.action, tt.res...) != cl {
			t.Errorf("classify(%q) not cached", tt.action)
		}
	}
}

func TestUserRulesComeFirstAndVerbsExtend(t *testing.T) {
	user := []Rule{{Name: "buckets", Match: []string{"bucket"}, Category: []string{"file"}},
		{Name: "nhn-only", Dataset: DatasetNHN, Match: []string{"instance"}, Category: []string{"host"}}}
	c, err := newClassifier(user, map[string][]string{"creation": {"provision"}, "start": {"boot"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		ds          byte
		action, cat string
		typ         string
	}{
		{dsNCP, "Create Bucket", "file", "creation"},
		{dsNCP, "Provision Server", "configuration", "creation"},
		{dsNHN, "iaas.instance.boot", "host", "start"},
		{dsNCP, "Boot Instance", "configuration", "start"}, // nhn-only rule
	} {
		cat, typ := c.classify(tt.ds, tt.action).strings()
		if strings.Join(cat, ",") != tt.cat || strings.Join(typ, ",") != tt.typ {
			t.Errorf("%q: %v %v, want %s %s", tt.action, cat, typ, tt.cat, tt.typ)
		}
	}
}

func TestRuleValidation(t *testing.T) {
	bad := []Rule{
		{Name: "no-match", Category: []string{"iam"}},
		{Name: "bad-category", Match: []string{"x"}, Category: []string{"login"}},
		{Name: "bad-type", Match: []string{"x"}, Category: []string{"iam"}, Type: []string{"modified"}},
		{Name: "no-category", Match: []string{"x"}},
		{Name: "blank-phrase", Match: []string{" - "}, Category: []string{"iam"}},
		{Name: "bad-dataset", Dataset: "aws.cloudtrail", Match: []string{"x"}, Category: []string{"iam"}},
	}
	for _, r := range bad {
		if err := r.Validate(); err == nil {
			t.Errorf("rule %q validated", r.Name)
		}
		if _, err := newClassifier([]Rule{r}, nil); err == nil {
			t.Errorf("classifier accepted rule %q", r.Name)
		}
	}
	if _, err := newClassifier(nil, map[string][]string{"modified": {"tweak"}}); err == nil {
		t.Error("verb type outside ECS accepted")
	}
	if _, err := newClassifier(nil, map[string][]string{"change": {"two words"}}); err == nil {
		t.Error("two-word verb accepted")
	}
}

func TestTokenize(t *testing.T) {
	for in, want := range map[string]string{
		"Create Sub Account":              "create sub account",
		"SubAccount":                      "sub account",
		"ACGRule":                         "acg rule",
		"IPv6":                            "ipv6",
		"event_id.iam.member.role.update": "event id iam member role update",
		"LoadBalancerInstance":            "load balancer instance",
		"로그인 Login":                       "로그인 login",
		"":                                "",
		"--":                              "",
	} {
		if got := strings.Join(tokenize(nil, in), " "); got != want {
			t.Errorf("tokenize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestClassifierCacheIsBounded(t *testing.T) {
	c, err := newClassifier(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < maxCacheEntries+10; i++ {
		c.classify(dsNCP, "Create Thing "+strconv.Itoa(i))
	}
	if len(c.cache) > maxCacheEntries {
		t.Fatalf("cache has %d entries, bound %d", len(c.cache), maxCacheEntries)
	}
}
