#include "engine/volumes.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/fs.h"

static const char *names[] = { "none", "copy", "shared", "skip" };

const char *vol_policy_name(enum vol_policy p)
{
	return (unsigned)p < 4 ? names[p] : "?";
}

int vol_policy_parse(const char *s, enum vol_policy *ret)
{
	for (int i = VOL_COPY; i <= VOL_SKIP; i++)
		if (s && !strcmp(s, names[i])) {
			*ret = (enum vol_policy)i;
			return 0;
		}
	return -EINVAL;
}

int vol_rule_parse(const char *arg, struct vol_rule *r, struct error *e)
{
	const char *eq = strrchr(arg, '=');
	static char dests[VOL_MAX][PATH_MAX]; /* rules live as long as the command */
	static int used;

	if (!eq || eq == arg || arg[0] != '/')
		return error_set(e, EINVAL, "--volume '%s': expected /PATH/IN/CONTAINER=copy|shared|skip", arg);
	if (vol_policy_parse(eq + 1, &r->policy) < 0)
		return error_set(e, EINVAL, "--volume '%s': unknown policy '%s' (copy, shared or skip)", arg, eq + 1);
	if (used == VOL_MAX || (size_t)(eq - arg) >= PATH_MAX)
		return error_set(e, E2BIG, "--volume '%s': too many or too long", arg);
	memcpy(dests[used], arg, (size_t)(eq - arg));
	dests[used][eq - arg] = 0;
	/* "/data/" and "/data" are the same mount */
	for (size_t l = strlen(dests[used]); l > 1 && dests[used][l - 1] == '/'; l--)
		dests[used][l - 1] = 0;
	r->dest = dests[used++];
	return 0;
}

static bool is_bind(json_t *mt)
{
	const char *type = json_string_value(json_object_get(mt, "type"));
	json_t *o;
	size_t k;
	bool bind = type && !strcmp(type, "bind");

	json_array_foreach(json_object_get(mt, "options"), k, o)
	{
		const char *os = json_string_value(o);
		bind |= os && (!strcmp(os, "bind") || !strcmp(os, "rbind"));
	}
	return bind;
}

static bool same_dest(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (lb > 1 && b[lb - 1] == '/')
		lb--;
	return la == lb && !strncmp(a, b, la);
}

int volumes_plan(const char *config, const char *label, enum vol_policy dflt, const struct vol_rule *rules, int nrules,
		 bool stat_sources, struct volume *out, int max, struct error *e)
{
	json_error_t je;
	json_t *cfg = json_loads(config, 0, &je), *mt;
	size_t i;
	int n = 0;

	if (!cfg)
		return error_set(e, EINVAL, "config.json of %s: %s", label, je.text);
	json_array_foreach(json_object_get(cfg, "mounts"), i, mt)
	{
		const char *src = json_string_value(json_object_get(mt, "source"));
		const char *dst = json_string_value(json_object_get(mt, "destination"));
		if (!is_bind(mt) || !src || src[0] != '/' || !dst)
			continue;
		if (n == max) {
			json_decref(cfg);
			return error_set(e, E2BIG, "%s has more than %d bind mounts", label, max);
		}
		struct volume *v = &out[n];
		memset(v, 0, sizeof(*v));
		snprintf(v->dest, sizeof(v->dest), "%s", dst);
		snprintf(v->source, sizeof(v->source), "%s", src);
		v->policy = dflt;
		for (int k = 0; k < nrules; k++)
			if (same_dest(rules[k].dest, dst))
				v->policy = rules[k].policy;
		if (v->policy == VOL_NONE) {
			error_set(e, EINVAL, "%s has a bind mount at %s (from %s) and no policy says what to do with it",
				  label, dst, src);
			error_hint(e, "add --volume %s=copy (its data travels), =shared (the destination has the same data at "
				      "%s) or =skip (the container gets an empty directory there), or --volumes POLICY for "
				      "every bind mount; nothing was frozen",
				   dst, src);
			json_decref(cfg);
			return -EINVAL;
		}
		v->is_dir = true;
		if (stat_sources) {
			struct stat st;
			if (stat(src, &st) < 0) {
				error_errno(e, errno, "bind mount source %s of %s", src, label);
				json_decref(cfg); /* src points into it */
				return -e->code;
			}
			v->is_dir = S_ISDIR(st.st_mode);
		}
		if (v->policy == VOL_COPY && !v->is_dir) {
			error_set(e, ENOTSUP, "%s: the bind mount at %s is a single file (%s): only directories can be copied",
				  label, dst, src);
			error_hint(e, "use --volume %s=shared or =skip", dst);
			json_decref(cfg);
			return -ENOTSUP;
		}
		n++;
	}
	json_decref(cfg);
	return n;
}

static int dump(json_t *cfg, char **ret, struct error *e)
{
	*ret = json_dumps(cfg, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(cfg);
	return *ret ? 0 : error_set(e, ENOMEM, "out of memory");
}

int volumes_rewrite_config(const char *config, const struct volume *vols, int n, char **ret, struct error *e)
{
	json_error_t je;
	json_t *cfg = json_loads(config, 0, &je), *mt;
	size_t i;

	if (!cfg)
		return error_set(e, EINVAL, "config.json: %s", je.text);
	json_array_foreach(json_object_get(cfg, "mounts"), i, mt)
	{
		const char *dst = json_string_value(json_object_get(mt, "destination"));
		if (!is_bind(mt) || !dst)
			continue;
		for (int k = 0; k < n; k++) {
			if (!same_dest(vols[k].dest, dst) || vols[k].policy == VOL_SHARED)
				continue;
			char rel[32];
			snprintf(rel, sizeof(rel), "volumes/%d", k);
			json_object_set_new(mt, "source", json_string(rel));
		}
	}
	return dump(cfg, ret, e);
}

int volumes_resolve_config(const char *config, const char *bundle, char **ret, struct error *e)
{
	json_error_t je;
	json_t *cfg = json_loads(config, 0, &je), *mt;
	size_t i;

	if (!cfg)
		return error_set(e, EINVAL, "config.json: %s", je.text);
	json_array_foreach(json_object_get(cfg, "mounts"), i, mt)
	{
		const char *src = json_string_value(json_object_get(mt, "source"));
		if (!is_bind(mt) || !src || src[0] == '/')
			continue;
		char *end;
		if (strncmp(src, "volumes/", 8) != 0 || !src[8] || (strtol(src + 8, &end, 10), *end) || src[8] == '-' ||
		    src[8] == '+' || strlen(src) > 12) {
			error_set(e, EINVAL, "config.json: bind mount source '%.60s' is neither absolute nor volumes/N", src);
			json_decref(cfg); /* src points into it */
			return -EINVAL;
		}
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", bundle, src);
		if (mkdir_p(path, 0755, e) < 0) {
			json_decref(cfg);
			return -e->code;
		}
		json_object_set_new(mt, "source", json_string(path));
	}
	return dump(cfg, ret, e);
}
