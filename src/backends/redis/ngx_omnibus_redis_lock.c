
/*
 * The cluster's lock, for singleton work (the store's rotation, expiry
 * and adoption).  Worker 0 of each pod asks for it: SET NX PX with the
 * node as owner, renewed every third of its life by a script that
 * extends it only for its owner.  A holder that cannot renew in time, or
 * finds another owner, stops leading at once; the zone says who leads.
 */


#include <ngx_omnibus_redis.h>


static void ngx_omnibus_redis_lock_tick(ngx_event_t *ev);
static void ngx_omnibus_redis_locked(ngx_omnibus_redis_conn_t *rc,
    redisReply *reply, void *data);
static void ngx_omnibus_redis_lead(ngx_omnibus_redis_t *rd,
    ngx_uint_t lead);


/* what a lock reply answers */
static u_char  ngx_omnibus_redis_take_lock[] = "take";
static u_char  ngx_omnibus_redis_renew_lock[] = "renew";


void
ngx_omnibus_redis_lock_init(ngx_omnibus_redis_t *rd)
{
    if (ngx_worker != 0) {
        return;
    }

    rd->lock_timer.handler = ngx_omnibus_redis_lock_tick;
    rd->lock_timer.data = rd;
    rd->lock_timer.log = rd->log;
    rd->lock_timer.cancelable = 1;

    /* a lock this process held before a respawn is not held now */
    ngx_omnibus_redis_lead(rd, 0);

    ngx_add_timer(&rd->lock_timer, 100);
}


static void
ngx_omnibus_redis_lock_tick(ngx_event_t *ev)
{
    u_char                     key[512], ttl[NGX_INT_T_LEN];
    size_t                     len[6];
    ngx_int_t                  rc;
    const char                *argv[6];
    ngx_omnibus_redis_t       *rd;
    ngx_omnibus_cluster_sh_t  *sh;

    rd = ev->data;
    sh = &rd->zone->sh->cluster;

    ngx_add_timer(ev, rd->lock_ttl / 3);

    /* unconfirmed for a whole life: another may hold it by now */

    if (sh->leader == ngx_pid
        && ngx_current_msec - rd->lock_renewed >= rd->lock_ttl)
    {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "omnibus_redis \"%V\": the cluster lock could not be "
                      "renewed in %M ms: singleton work stops here",
                      &rd->zone->name, rd->lock_ttl);
        (void) ngx_atomic_fetch_add(&sh->lock_lost, 1);
        ngx_omnibus_redis_lead(rd, 0);
    }

    if (!ngx_omnibus_redis_usable(&rd->cmd)) {
        sh->lock_known = 0;
        return;
    }

    if (rd->lock_pending) {
        return;
    }

    len[1] = ngx_omnibus_redis_key(rd, key, "lock", NULL);
    argv[2] = (char *) rd->node.data;
    len[2] = rd->node.len;

    if (sh->leader == ngx_pid) {
        /* renewed only if still ours */
        argv[3] = (char *) ttl;
        len[3] = ngx_sprintf(ttl, "%M", rd->lock_ttl) - ttl;

        rc = ngx_omnibus_redis_script(&rd->cmd, ngx_omnibus_redis_locked,
                                      ngx_omnibus_redis_renew_lock,
                                      NGX_OMNIBUS_REDIS_RENEW, key, len[1],
                                      2, &argv[2], &len[2], NULL);

    } else {
        argv[0] = "SET";
        len[0] = 3;
        argv[1] = (char *) key;
        argv[3] = "NX";
        len[3] = 2;
        argv[4] = "PX";
        len[4] = 2;
        argv[5] = (char *) ttl;
        len[5] = ngx_sprintf(ttl, "%M", rd->lock_ttl) - ttl;

        rc = ngx_omnibus_redis_send(&rd->cmd, ngx_omnibus_redis_locked,
                                    ngx_omnibus_redis_take_lock, 6, argv,
                                    len, NULL);
    }

    if (rc == NGX_OK) {
        rd->lock_pending = ngx_current_msec | 1;
    }
}


static void
ngx_omnibus_redis_locked(ngx_omnibus_redis_conn_t *rc, redisReply *reply,
    void *data)
{
    ngx_msec_t                 sent;
    ngx_omnibus_redis_t       *rd;
    ngx_omnibus_cluster_sh_t  *sh;

    rd = rc->rd;
    sh = &rd->zone->sh->cluster;
    sent = rd->lock_pending;
    rd->lock_pending = 0;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        sh->lock_known = 0;
        return;
    }

    sh->lock_known = 1;

    if (data == ngx_omnibus_redis_take_lock) {
        if (reply->type == REDIS_REPLY_STATUS) {
            /* its life counts from when it was asked for */
            rd->lock_renewed = sent;
            (void) ngx_atomic_fetch_add(&sh->lock_acquired, 1);

            ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                          "omnibus_redis \"%V\": node \"%V\" holds the "
                          "cluster lock", &rd->zone->name, &rd->node);

            ngx_omnibus_redis_lead(rd, 1);
        }

        return;
    }

    if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
        rd->lock_renewed = sent;
        return;
    }

    if (sh->leader == ngx_pid) {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "omnibus_redis \"%V\": the cluster lock is no longer "
                      "node \"%V\"'s: singleton work stops here",
                      &rd->zone->name, &rd->node);
        (void) ngx_atomic_fetch_add(&sh->lock_lost, 1);
        ngx_omnibus_redis_lead(rd, 0);
    }
}


static void
ngx_omnibus_redis_lead(ngx_omnibus_redis_t *rd, ngx_uint_t lead)
{
    rd->zone->sh->cluster.leader = lead ? ngx_pid : 0;
}


/* on exit the lock is let go, if that can be said without waiting */

void
ngx_omnibus_redis_lock_exit(ngx_omnibus_redis_t *rd)
{
    u_char       key[512];
    size_t       len[1];
    const char  *argv[1];

    if (ngx_worker != 0) {
        return;
    }

    if (rd->lock_timer.timer_set) {
        ngx_del_timer(&rd->lock_timer);
    }

    if (rd->zone->sh->cluster.leader != ngx_pid) {
        return;
    }

    ngx_omnibus_redis_lead(rd, 0);

    argv[0] = (char *) rd->node.data;
    len[0] = rd->node.len;

    (void) ngx_omnibus_redis_script(&rd->cmd, NULL, NULL,
                                    NGX_OMNIBUS_REDIS_UNCLAIM, key,
                                    ngx_omnibus_redis_key(rd, key, "lock",
                                                          NULL),
                                    1, argv, len, NULL);
}
