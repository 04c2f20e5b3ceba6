#include "engine/handoff.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "transport/proto.h"
#include "transport/rsh.h"
#include "util/log.h"

uint32_t handoff_restore_deadline_ms(uint32_t lease_ms, uint64_t image_bytes)
{
	uint64_t ms = lease_ms + image_bytes * 1000 / HANDOFF_SLOWEST_RESTORE_BPS;

	return ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
}

uint32_t handoff_lease_clamp(uint64_t lease_ms)
{
	if (lease_ms == 0)
		return HANDOFF_LEASE_MS;
	if (lease_ms < HANDOFF_LEASE_MIN_MS)
		return HANDOFF_LEASE_MIN_MS;
	if (lease_ms > HANDOFF_LEASE_MAX_MS)
		return HANDOFF_LEASE_MAX_MS;
	return (uint32_t)lease_ms;
}

const char *outcome_name(int outcome)
{
	switch (outcome) {
	case OUTCOME_COMMITTED:
		return "committed";
	case OUTCOME_ABORTED:
		return "aborted";
	case OUTCOME_IN_PROGRESS:
		return "in progress";
	default:
		return "unknown";
	}
}

int handoff_query(const char *rsh, const char *host, const char *remote_cmt, const char *my_name, const char *mig_id,
		  uint32_t timeout_ms, struct error *e)
{
	struct peer p;
	struct mbuf mb;
	struct msg m;
	int r;

	r = peer_connect(&p, rsh, host, remote_cmt, my_name, e);
	if (r < 0)
		return r;
	p.conn.timeout_ms = (int)timeout_ms;
	mb_init(&mb);
	mb_str(&mb, A_MIGRATION_ID, mig_id);
	r = proto_send_msg(&p.conn, MSG_QUERY, &mb, e);
	mb_free(&mb);
	if (r >= 0)
		r = proto_recv_msg(&p.conn, MSG_STATUS, &m, e);
	if (r >= 0) {
		if (m.str[A_MIGRATION_ID] && strcmp(m.str[A_MIGRATION_ID], mig_id) != 0)
			r = error_set(e, EPROTO, "%s answered about migration %s, not %s", p.name, m.str[A_MIGRATION_ID],
				      mig_id);
		else if (m.num[A_OUTCOME] > OUTCOME_IN_PROGRESS)
			r = error_set(e, EPROTO, "%s answered with an unknown outcome %llu", p.name,
				      (unsigned long long)m.num[A_OUTCOME]);
		else
			r = (int)m.num[A_OUTCOME];
		msg_free(&m);
	}
	/* end the session without waiting for anything */
	{
		struct error tmp = { 0 };
		proto_send_msg(&p.conn, MSG_ABORT, NULL, &tmp);
	}
	peer_close(&p);
	if (r >= 0)
		log_debug("%s says migration %s is %s", host, mig_id, outcome_name(r));
	return r;
}
