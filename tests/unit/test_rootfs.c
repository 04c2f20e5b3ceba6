/* Unit tests of the manifest (src/transport/manifest.c) and of the agent's
 * check of deletion names from a peer (src/engine/rootfs.c). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/rootfs.h"
#include "tap.h"
#include "transport/manifest.h"

static void count_one(const char *p, void *arg)
{
	(void)p;
	(*(int *)arg)++;
}

static void test_manifest(void)
{
	struct manifest *m = manifest_new();
	struct stat a = { .st_mode = S_IFREG | 0644, .st_size = 10, .st_ino = 7 }, b;
	char name[64];

	a.st_mtim.tv_sec = 100;
	a.st_ctim.tv_sec = 100;
	ok(manifest_put(m, "rootfs/a", &a) == 0, "put");
	for (int i = 0; i < 5000; i++) { /* forces the table to grow */
		snprintf(name, sizeof(name), "rootfs/many/%d", i);
		manifest_put(m, name, &a);
	}
	is_int((long long)manifest_count(m), 5001, "5001 entries");
	is_int(manifest_check(m, "rootfs/a", &a), MF_SAME, "unchanged");
	b = a;
	b.st_ctim.tv_nsec = 1;
	is_int(manifest_check(m, "rootfs/a", &b), MF_CHANGED, "a ctime change (chmod, xattr, write) is a change");
	b = a;
	b.st_size = 11;
	is_int(manifest_check(m, "rootfs/a", &b), MF_CHANGED, "a size change");
	b = a;
	b.st_mode = S_IFDIR | 0755;
	is_int(manifest_check(m, "rootfs/a", &b), MF_TYPE_CHANGED, "a file that became a directory");
	is_int(manifest_check(m, "rootfs/new", &a), MF_NEW, "a new path");
	for (int i = 0; i < 5000; i += 2) {
		snprintf(name, sizeof(name), "rootfs/many/%d", i);
		manifest_check(m, name, &a);
	}
	int unseen = 0;
	manifest_each_unseen(m, count_one, &unseen); /* the 2500 odd entries, and rootfs/a was seen */
	is_int(unseen, 2500, "the entries not seen since are the deleted ones");
	manifest_free(m);
}

static void test_names(void)
{
	ok(rootfs_deletion_name_ok("rootfs/a"), "rootfs/a");
	ok(rootfs_deletion_name_ok("rootfs/a/b/..c"), "'..c' is a name");
	ok(!rootfs_deletion_name_ok("rootfs"), "the rootfs itself is refused");
	ok(!rootfs_deletion_name_ok("rootfs/"), "rootfs/ is refused");
	ok(!rootfs_deletion_name_ok("config.json"), "outside rootfs/ is refused");
	ok(!rootfs_deletion_name_ok("/etc/passwd"), "an absolute path is refused");
	ok(!rootfs_deletion_name_ok("rootfs/../config.json"), "'..' is refused");
	ok(!rootfs_deletion_name_ok("rootfs/a/../../x"), "'..' inside is refused");
	ok(!rootfs_deletion_name_ok("rootfs//a"), "an empty component is refused");
	ok(!rootfs_deletion_name_ok("rootfs/./a"), "'.' is refused");
	ok(!rootfs_deletion_name_ok("rootfs/a/"), "a trailing slash is refused");
	ok(!rootfs_deletion_name_ok("rootfsX/a"), "a sibling of rootfs is refused");
	ok(rootfs_deletion_name_ok("volumes/0/a"), "below a copied volume");
	ok(rootfs_deletion_name_ok("volumes/12/a/b"), "below volume 12");
	ok(!rootfs_deletion_name_ok("volumes/0"), "the volume itself is refused");
	ok(!rootfs_deletion_name_ok("volumes/0/"), "volumes/0/ is refused");
	ok(!rootfs_deletion_name_ok("volumes/x/a"), "volumes/x is not a volume");
	ok(!rootfs_deletion_name_ok("volumes/0/../../config.json"), "'..' below a volume is refused");
	ok(!rootfs_deletion_name_ok("volumes/123456/a"), "an absurd volume number is refused");
}

int main(void)
{
	test_manifest();
	test_names();
	return done_testing();
}
