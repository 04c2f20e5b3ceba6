#include "util/config.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"

/* yes, no, or a tmpfs size: digits with an optional k/m/g or %. */
static bool images_tmpfs_valid(const char *v)
{
	size_t n = strspn(v, "0123456789");

	if (!strcmp(v, "yes") || !strcmp(v, "no"))
		return true;
	if (n == 0 || v[0] == '0' || n > 12)
		return false;
	return !v[n] || (strchr("kmgKMG%", v[n]) && !v[n + 1]);
}

void config_defaults(struct config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->root, sizeof(c->root), "/var/lib/cmt");
	snprintf(c->runc_root, sizeof(c->runc_root), "/run/runc");
	snprintf(c->net_attach, sizeof(c->net_attach), "bridge");
	snprintf(c->net_bridge, sizeof(c->net_bridge), "cmt0");
	snprintf(c->images_tmpfs, sizeof(c->images_tmpfs), "yes");
	c->staged_restore = true;
	if (gethostname(c->name, sizeof(c->name) - 1) < 0)
		snprintf(c->name, sizeof(c->name), "localhost");
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = 0;
	return s;
}

static int set_str(char *dst, size_t n, const char *val, const char *key, const char *origin, int line, struct error *e)
{
	if (strlen(val) >= n)
		return error_set(e, EINVAL, "%s:%d: value of '%s' is too long (%zu bytes, at most %zu)", origin, line, key,
				 strlen(val), n - 1);
	memcpy(dst, val, strlen(val) + 1);
	return 0;
}

int config_parse(struct config *c, const char *text, const char *origin, struct error *e)
{
	_cleanup_free_ char *copy = strdup(text);
	char *save = NULL, *ln;
	int line = 0;

	if (!copy)
		return error_set(e, ENOMEM, "out of memory");
	/* strtok_r would merge empty lines and break line numbers: split by hand. */
	for (ln = copy; ln; ln = save) {
		char *eq, *key, *val, *hash;
		int r;

		save = strchr(ln, '\n');
		if (save)
			*save++ = 0;
		line++;
		hash = strchr(ln, '#');
		if (hash)
			*hash = 0;
		ln = trim(ln);
		if (!*ln)
			continue;
		eq = strchr(ln, '=');
		if (!eq)
			return error_set(e, EINVAL, "%s:%d: expected 'key = value', got '%s'", origin, line, ln);
		*eq = 0;
		key = trim(ln);
		val = trim(eq + 1);
		if (!strcmp(key, "criu"))
			r = set_str(c->criu, sizeof(c->criu), val, key, origin, line, e);
		else if (!strcmp(key, "runc"))
			r = set_str(c->runc, sizeof(c->runc), val, key, origin, line, e);
		else if (!strcmp(key, "name"))
			r = set_str(c->name, sizeof(c->name), val, key, origin, line, e);
		else if (!strcmp(key, "cgroup_parent"))
			r = set_str(c->cgroup_parent, sizeof(c->cgroup_parent), val, key, origin, line, e);
		else if (!strcmp(key, "runc_root"))
			r = set_str(c->runc_root, sizeof(c->runc_root), val, key, origin, line, e);
		else if (!strcmp(key, "net_attach")) {
			r = set_str(c->net_attach, sizeof(c->net_attach), val, key, origin, line, e);
			if (r == 0 && strcmp(val, "bridge") != 0 && val[0] != '/')
				return error_set(e, EINVAL, "%s:%d: net_attach must be 'bridge' or an absolute path to a program",
						 origin, line);
		} else if (!strcmp(key, "net_bridge")) {
			r = set_str(c->net_bridge, sizeof(c->net_bridge), val, key, origin, line, e);
			if (r == 0 && (!val[0] || strpbrk(val, "/ \t")))
				return error_set(e, EINVAL, "%s:%d: net_bridge must be an interface name", origin, line);
		} else if (!strcmp(key, "images_tmpfs")) {
			r = set_str(c->images_tmpfs, sizeof(c->images_tmpfs), val, key, origin, line, e);
			if (r == 0 && !images_tmpfs_valid(val))
				r = error_set(e, EINVAL, "%s:%d: images_tmpfs '%s': use yes, no, or a size such as 512m, 2g or 25%%",
					      origin, line, val);
		} else if (!strcmp(key, "early_freeze")) {
			if (strcmp(val, "yes") != 0 && strcmp(val, "no") != 0)
				return error_set(e, EINVAL, "%s:%d: early_freeze '%s': use yes or no", origin, line, val);
			c->early_freeze = !strcmp(val, "yes");
			r = 0;
		} else if (!strcmp(key, "staged_restore")) {
			if (strcmp(val, "yes") != 0 && strcmp(val, "no") != 0)
				return error_set(e, EINVAL, "%s:%d: staged_restore '%s': use yes or no", origin, line, val);
			c->staged_restore = !strcmp(val, "yes");
			r = 0;
		} else if (!strcmp(key, "net_route_hook")) {
			r = set_str(c->net_route_hook, sizeof(c->net_route_hook), val, key, origin, line, e);
			if (r == 0 && val[0] && val[0] != '/')
				return error_set(e, EINVAL, "%s:%d: net_route_hook must be an absolute path", origin, line);
		} else
			return error_set(e, EINVAL,
					 "%s:%d: unknown key '%s' (known: criu, runc, runc_root, name, cgroup_parent, net_attach, "
					 "net_bridge, net_route_hook, images_tmpfs, early_freeze, staged_restore)",
					 origin, line, key);
		if (r < 0)
			return r;
	}
	return 0;
}

int config_load(struct config *c, struct error *e)
{
	char path[PATH_MAX + 16];
	_cleanup_free_ char *text = NULL;
	int r;

	snprintf(path, sizeof(path), "%s/config", c->root);
	if (!path_exists(path))
		return 0;
	r = read_file(path, 1 << 20, &text, NULL, e);
	if (r < 0)
		return r;
	return config_parse(c, text, path, e);
}
