#include "transport/keepalive.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static void *run(void *arg)
{
	struct keepalive *ka = arg;
	struct timespec until;

	pthread_mutex_lock(&ka->mu);
	while (!ka->stop) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += ka->interval_ms / 1000;
		until.tv_nsec += (long)(ka->interval_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!ka->stop && pthread_cond_timedwait(&ka->cv, &ka->mu, &until) != ETIMEDOUT)
			;
		if (ka->stop)
			break;
		pthread_mutex_unlock(&ka->mu);
		struct error e = { 0 };
		int r = proto_send_keepalive(ka->conn, &e);
		pthread_mutex_lock(&ka->mu);
		if (r < 0) {
			ka->failed = true; /* the main thread finds out on its next send or receive */
			break;
		}
	}
	pthread_mutex_unlock(&ka->mu);
	return NULL;
}

int keepalive_start(struct keepalive *ka, struct proto_conn *conn, unsigned interval_ms)
{
	int r;

	memset(ka, 0, sizeof(*ka));
	if (!interval_ms)
		return 0;
	ka->conn = conn;
	ka->interval_ms = interval_ms;
	pthread_mutex_init(&ka->lock, NULL);
	pthread_mutex_init(&ka->mu, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&ka->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	conn->send_lock = &ka->lock;
	r = pthread_create(&ka->thread, NULL, run, ka);
	if (r != 0) {
		conn->send_lock = NULL;
		return -r;
	}
	ka->running = true;
	return 0;
}

void keepalive_stop(struct keepalive *ka)
{
	if (!ka->running)
		return;
	pthread_mutex_lock(&ka->mu);
	ka->stop = true;
	pthread_cond_signal(&ka->cv);
	pthread_mutex_unlock(&ka->mu);
	pthread_join(ka->thread, NULL);
	ka->conn->send_lock = NULL;
	pthread_mutex_destroy(&ka->lock);
	pthread_mutex_destroy(&ka->mu);
	pthread_cond_destroy(&ka->cv);
	ka->running = false;
}
