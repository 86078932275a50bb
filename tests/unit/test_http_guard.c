/*
 * Unit tests of http_guard.c: which request paths are canonical, which Host
 * headers name the host, and the Content-Type and Origin rules for requests
 * that change state.
 */
#include <stdlib.h>

#include "check.h"
#include "http_guard.h"

static void test_canonical_paths(void)
{
	const char *good[] = {"/", "/api/registry", "/api/registry?x=1", "/ui/", "/ui/ndi",
			"/api/devices/rpi-01", "/%61pi/registry", "/api/devices/a%20b", "/api/x?a=//..",
			"/api/..x", "/api/x..", "/api/.hidden", "/static/app.js", NULL};
	for(const char **p = good; *p; p++) {
		if(!CHECK(http_path_problem(*p) == NULL))
			printf("     refused %s: %s\n", *p, http_path_problem(*p));
	}
	const char *bad[] = {"", "api", "*", "http://x/api", "//api/registry", "///api/registry",
			"/api//registry", "/%2Fapi/registry", "/%2fapi", "/api/registry%00", "/api/%00x",
			"/./api", "/api/.", "/api/./registry", "/x/../api", "/api/..", "/%2e/api",
			"/%2E%2e/api", "/.%2E/api", "/api%5Cx", "/api%5cx", "/api\\x", "/api%", "/api%4",
			"/api%zz", "/api%0a", "/api%7F", "/api#x", "/api/registry//", NULL};
	for(const char **p = bad; *p; p++) {
		if(!CHECK(http_path_problem(*p) != NULL))
			printf("     accepted %s\n", *p);
	}
	CHECK_STR_CONTAINS(http_path_problem("//x"), "empty path segment");
	CHECK_STR_CONTAINS(http_path_problem("/a%00"), "NUL");
}

static void test_hosts(void)
{
	char *allowed[] = {"lab-pc.example.org", ".studio.example", "10.0.0.5", "fd00::5"};
	struct http_host_rules r;
	CHECK_INT_EQ(http_host_rules_init(&r, "192.168.1.9", allowed, 4), 0);
	const char *good[] = {"127.0.0.1", "127.0.0.1:8080", "127.9.9.9", "localhost", "LOCALHOST:1",
			"localhost.", "app.localhost", "[::1]", "[::1]:8080", "[0:0:0:0:0:0:0:1]:80",
			"192.168.1.9:8080", "lab-pc.example.org", "Lab-PC.Example.Org.:443", "studio.example",
			"a.b.studio.example", "10.0.0.5:1", "[fd00:0::5]:8080", NULL};
	for(const char **h = good; *h; h++) {
		if(!CHECK(http_host_allowed(&r, *h)))
			printf("     refused Host %s\n", *h);
	}
	const char *bad[] = {"", "evil.example", "evil.example:8080", "127.0.0.1.evil.example",
			"localhost.evil.example", "xlocalhost", "studio.example.evil", "xstudio.example",
			"lab-pc.example.org.evil", "192.168.1.90", "[::2]", "::1", "[::1",
			"127.0.0.1:", "127.0.0.1:abc", "127.0.0.1:123456", "a b", "lab-pc.example.org@evil",
			"[evil]:80", "localhost:80:80", NULL};
	for(const char **h = bad; *h; h++) {
		if(!CHECK(!http_host_allowed(&r, *h)))
			printf("     allowed Host %s\n", *h);
	}
	CHECK(http_host_allowed(&r, NULL)); /* HTTP/1.0; http.c decides */
	http_host_rules_free(&r);

	char *any[] = {"*"};
	CHECK_INT_EQ(http_host_rules_init(&r, "127.0.0.1", any, 1), 0);
	CHECK(http_host_allowed(&r, "anything.example"));
	CHECK(!http_host_allowed(&r, "bad host"));
	http_host_rules_free(&r);

	/* A wildcard bind knows the machine's own addresses. */
	CHECK_INT_EQ(http_host_rules_init(&r, "0.0.0.0", NULL, 0), 0);
	CHECK(r.n_names >= 1);
	CHECK(http_host_allowed(&r, "127.0.0.1"));
	CHECK(!http_host_allowed(&r, "evil.example"));
	http_host_rules_free(&r);
}

static void test_host_patterns(void)
{
	const char *good[] = {"lab-pc", "lab-pc.example.org", ".example.org", "*", "10.0.0.5", "fd00::5",
			"[fd00::5]", NULL};
	for(const char **p = good; *p; p++) {
		if(!CHECK(http_host_pattern_valid(*p)))
			printf("     refused pattern %s\n", *p);
	}
	const char *bad[] = {"", "http://lab-pc", "lab-pc:8080", "lab-pc/x", "a b", "*.example.org", ".",
			"..x", "[fd00::5]:80", ".fd00::5", NULL};
	for(const char **p = bad; *p; p++) {
		if(!CHECK(!http_host_pattern_valid(*p)))
			printf("     accepted pattern %s\n", *p);
	}
	CHECK(!http_host_pattern_valid(NULL));
}

static void test_browser_rules(void)
{
	CHECK(http_content_type_is_json("application/json"));
	CHECK(http_content_type_is_json("Application/JSON; charset=utf-8"));
	CHECK(http_content_type_is_json(" application/json ;charset=utf-8"));
	CHECK(!http_content_type_is_json(NULL));
	CHECK(!http_content_type_is_json("text/plain"));
	CHECK(!http_content_type_is_json("application/jsonp"));
	CHECK(!http_content_type_is_json("application/json-patch+json"));
	CHECK(!http_content_type_is_json("multipart/form-data; boundary=application/json"));

	CHECK(http_method_changes_state("POST"));
	CHECK(http_method_changes_state("DELETE"));
	CHECK(!http_method_changes_state("GET"));
	CHECK(!http_method_changes_state("OPTIONS"));

	CHECK(http_origin_is_own("http://127.0.0.1:8080", "127.0.0.1:8080", false));
	CHECK(http_origin_is_own("https://lab-pc", "LAB-PC", true));
	CHECK(!http_origin_is_own("https://127.0.0.1:8080", "127.0.0.1:8080", false));
	CHECK(!http_origin_is_own("http://127.0.0.1:8081", "127.0.0.1:8080", false));
	CHECK(!http_origin_is_own("null", "127.0.0.1:8080", false));
	CHECK(!http_origin_is_own(NULL, "127.0.0.1", false));
	CHECK(!http_origin_is_own("http://127.0.0.1", NULL, false));
}

int main(void)
{
	test_canonical_paths();
	test_hosts();
	test_host_patterns();
	test_browser_rules();
	return check_summary();
}
