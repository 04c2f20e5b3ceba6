/* Reaching another host: the agent is started through a remote shell, like
 * rsync and git do: `<rsh words> [USER@]HOST <remote-cmt words> agent --stdio`. */
#pragma once
#include <sys/types.h>

#include "transport/proto.h"

#define RSH_MAX_WORDS 64
/* How long peer_connect waits for the agent's WELCOME (remote shell login
 * included); afterwards the connection's timeout is the caller's business. */
#define RSH_CONNECT_TIMEOUT_MS 60000

/* Splits a command line into words: blanks separate, '...' and "..." quote,
 * backslash escapes.  Returns the word count or negative errno (bad quoting,
 * too many words).  Words point into buf (which is modified). */
int split_words(char *buf, char *words[], int max, struct error *e);

struct peer {
	char host[256];       /* as given: [user@]host */
	char name[128];       /* for messages: host part */
	pid_t pid;            /* remote shell process */
	struct proto_conn conn;
	char peer_software[128];
	char peer_host[128];  /* the agent's own name for its host */
	unsigned peer_major, peer_minor;
};

/* Where OpenSSH control sockets go ("" = no connection sharing).  When the
 * remote shell is plain `ssh` without its own ControlPath/ControlMaster
 * options, cmt adds ControlMaster=auto, ControlPersist=60 and this
 * directory, so that probes and migrations to one host share a connection. */
extern char rsh_control_dir[256];

/* Starts the agent on host and performs the HELLO/WELCOME handshake. */
int peer_connect(struct peer *p, const char *rsh, const char *host, const char *remote_cmt, const char *my_name,
		 struct error *e);
/* Closes the connection and reaps the remote shell. */
void peer_close(struct peer *p);
/* Checks a peer's protocol version against ours; fills e when incompatible. */
int proto_version_check(unsigned major, unsigned minor, const char *software, const char *where, struct error *e);
