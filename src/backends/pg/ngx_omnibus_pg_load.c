
/*
 * Rows back into the zone.  A zone that starts empty (the first start
 * after a full stop) loads this node's unfinished rows in id order, then
 * its newest dead letters, before it is ready: one worker loads, its
 * progress (the last id queued) in the zone, so that a successor resumes
 * where a crashed loader stopped.  Once ready, worker 0 looks every few
 * seconds for a node that went silent and adopts its rows.
 */


#include <ngx_omnibus_pg_store.h>


#define NGX_OMNIBUS_PG_LOAD_ROWS     500
#define NGX_OMNIBUS_PG_ADOPT_EVERY   5000


typedef enum {
    NGX_OMNIBUS_PG_LOAD_MESSAGES = 0,
    NGX_OMNIBUS_PG_LOAD_DLQ,
    NGX_OMNIBUS_PG_ADOPT
} ngx_omnibus_pg_load_e;


static void ngx_omnibus_pg_load_run(ngx_omnibus_pg_store_t *st,
    ngx_uint_t step);
static ngx_int_t ngx_omnibus_pg_load_send(ngx_omnibus_pg_op_t *op,
    PGconn *pg);
static void ngx_omnibus_pg_load_result(ngx_omnibus_pg_op_t *op,
    PGresult *res);
static ngx_int_t ngx_omnibus_pg_load_row(ngx_omnibus_pg_store_t *st,
    PGresult *res, int i);
static void ngx_omnibus_pg_load_done(ngx_omnibus_pg_op_t *op, ngx_int_t rc);


void
ngx_omnibus_pg_load(ngx_omnibus_pg_store_t *st)
{
    ngx_omnibus_store_sh_t  *sh;

    sh = &st->zone->sh->store;

    if (st->loading || !ngx_omnibus_pg_available(&st->pool)
        || sh->schema < NGX_OMNIBUS_PG_SCHEMA)
    {
        return;
    }

    ngx_shmtx_lock(&st->zone->shpool->mutex);

    if (sh->state == NGX_OMNIBUS_STORE_LOAD
        || (sh->state == NGX_OMNIBUS_STORE_LOADING && sh->loader != ngx_pid
            && kill(sh->loader, 0) == -1 && ngx_errno == NGX_ESRCH))
    {
        sh->state = NGX_OMNIBUS_STORE_LOADING;
        sh->loader = ngx_pid;
    }

    ngx_shmtx_unlock(&st->zone->shpool->mutex);

    if (sh->state == NGX_OMNIBUS_STORE_LOADING && sh->loader == ngx_pid) {
        ngx_omnibus_pg_load_run(st, st->load_step);
    }
}


/*
 * Only once this node's own heartbeats have gone through, since its last
 * loss of the database, for adopt_after and the breaker's open time: when
 * the database was away every node was silent, and the others may be
 * held back by their breakers before they are heard again.  The first
 * node back must not take their rows.
 */

void
ngx_omnibus_pg_adopt(ngx_omnibus_pg_store_t *st)
{
    if (st->loading
        || ngx_current_msec - st->adopted < NGX_OMNIBUS_PG_ADOPT_EVERY
        || st->beating == 0
        || ngx_current_msec - st->beating
           < (ngx_msec_t) st->adopt_after * 1000 + st->breaker.timeout)
    {
        return;
    }

    st->adopted = ngx_current_msec;

    ngx_omnibus_pg_load_run(st, NGX_OMNIBUS_PG_ADOPT);
}


static void
ngx_omnibus_pg_load_run(ngx_omnibus_pg_store_t *st, ngx_uint_t step)
{
    if (!ngx_omnibus_pg_available(&st->pool)) {
        return;
    }

    st->load_op.send = ngx_omnibus_pg_load_send;
    st->load_op.result = ngx_omnibus_pg_load_result;
    st->load_op.done = ngx_omnibus_pg_load_done;
    st->load_op.data = st;
    st->load_step = step;
    st->load_rows = 0;
    st->load_full = 0;

    /* set first: a run that fails at once has called done() already */

    st->loading = 1;

    if (ngx_omnibus_pg_run(&st->pool, &st->load_op) != NGX_OK) {
        st->loading = 0;
    }
}


static ngx_int_t
ngx_omnibus_pg_load_send(ngx_omnibus_pg_op_t *op, PGconn *pg)
{
    ngx_int_t                rc;
    const char              *v[4];
    ngx_omnibus_store_sh_t  *sh;
    ngx_omnibus_pg_store_t  *st;
    u_char                   after[NGX_OMNIBUS_ID_LEN + 1];
    u_char                   limit[NGX_INT_T_LEN + 1];
    u_char                   secs[NGX_TIME_T_LEN + 1];

    st = op->data;
    sh = &st->zone->sh->store;

    v[0] = st->node_z;
    v[1] = st->zone_z;

    switch (st->load_step) {

    case NGX_OMNIBUS_PG_LOAD_DLQ:
        (void) ngx_sprintf(limit, "%ui%Z", st->zone->dlq_size);
        v[2] = (char *) limit;

        rc = ngx_omnibus_pg_send(pg, "omnibus_load_dlq", 3, v, NULL, NULL);
        break;

    case NGX_OMNIBUS_PG_ADOPT:
        (void) ngx_sprintf(secs, "%T%Z", st->adopt_after);
        (void) ngx_sprintf(limit, "%ui%Z",
                           (ngx_uint_t) NGX_OMNIBUS_PG_LOAD_ROWS);
        v[2] = (char *) secs;
        v[3] = (char *) limit;

        rc = ngx_omnibus_pg_send(pg, "omnibus_adopt", 4, v, NULL, NULL);
        break;

    default:
        (void) ngx_cpystrn(after, sh->loaded, sh->loaded_len + 1);
        (void) ngx_sprintf(limit, "%ui%Z",
                           (ngx_uint_t) NGX_OMNIBUS_PG_LOAD_ROWS);
        v[2] = (char *) after;
        v[3] = (char *) limit;

        rc = ngx_omnibus_pg_send(pg, "omnibus_load", 4, v, NULL, NULL);
    }

    return rc == NGX_OK ? 1 : NGX_ERROR;
}


static void
ngx_omnibus_pg_load_result(ngx_omnibus_pg_op_t *op, PGresult *res)
{
    int                      i, n;
    ngx_omnibus_store_sh_t  *sh;
    ngx_omnibus_pg_store_t  *st;

    st = op->data;
    sh = &st->zone->sh->store;

    if (ngx_omnibus_pg_check(op, res, NGX_OMNIBUS_PG_QUERY) != NGX_OK) {
        return;
    }

    n = PQntuples(res);
    st->load_rows = n;

    for (i = 0; i < n; i++) {
        switch (ngx_omnibus_pg_load_row(st, res, i)) {

        case NGX_OK:
            if (st->load_step == NGX_OMNIBUS_PG_LOAD_MESSAGES) {
                ngx_memcpy(sh->loaded, PQgetvalue(res, i, 0),
                           NGX_OMNIBUS_ID_LEN);
                sh->loaded_len = NGX_OMNIBUS_ID_LEN;
            }

            break;

        case NGX_AGAIN:
            /* no room now: loaded again from the last id, later */
            st->load_full = 1;

            if (st->load_step == NGX_OMNIBUS_PG_ADOPT) {
                ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                              "omnibus store \"%V\": the zone has no room "
                              "for %d adopted message(s), they load at "
                              "the next full start", &st->zone->name,
                              n - i);
            }

            return;

        case NGX_ERROR:
            ngx_omnibus_pg_failed(op, NULL, NGX_OMNIBUS_PG_QUERY);
            return;

        default:
            break;
        }
    }
}


/*
 * One row into its shard, past backpressure (it was accepted), or into
 * the DLQ.  NGX_AGAIN: the zone has no room; NGX_DECLINED: not a row this
 * module wrote, skipped.
 */

static ngx_int_t
ngx_omnibus_pg_load_row(ngx_omnibus_pg_store_t *st, PGresult *res, int i)
{
    size_t                     len;
    u_char                    *bytes[3];
    ngx_int_t                  rc;
    ngx_str_t                  route, error, *field[3];
    ngx_uint_t                 k;
    ngx_omnibus_offer_t        offer;
    ngx_omnibus_store_sh_t    *sh;
    ngx_omnibus_enqueue_rc_e   qrc;
    u_char                     id[NGX_OMNIBUS_ID_LEN];

    sh = &st->zone->sh->store;

    ngx_memzero(&offer, sizeof(ngx_omnibus_offer_t));

    offer.id = (u_char *) PQgetvalue(res, i, 0);
    offer.topic.data = (u_char *) PQgetvalue(res, i, 1);
    offer.topic.len = PQgetlength(res, i, 1);
    offer.priority = ngx_atoi((u_char *) PQgetvalue(res, i, 2),
                              PQgetlength(res, i, 2));
    offer.json = (PQgetvalue(res, i, 6)[0] == 't');
    offer.force = 1;

    if (PQgetlength(res, i, 0) != NGX_OMNIBUS_ID_LEN
        || offer.priority > 9 || offer.topic.len == 0
        || offer.topic.len > NGX_OMNIBUS_TOPIC_MAX)
    {
        return NGX_DECLINED;
    }

    /* bytea comes as text, \x and hex digits: content type, key, payload */

    field[0] = &offer.ctype;
    field[1] = &offer.key;
    field[2] = &offer.payload;

    for (k = 0; k < 3; k++) {
        bytes[k] = PQunescapeBytea((u_char *) PQgetvalue(res, i, 3 + k),
                                   &len);
        if (bytes[k] == NULL) {
            rc = NGX_ERROR;
            goto done;
        }

        field[k]->data = bytes[k];
        field[k]->len = len;
    }

    if (offer.ctype.len > NGX_OMNIBUS_CTYPE_MAX
        || offer.key.len > NGX_OMNIBUS_KEY_MAX)
    {
        rc = NGX_DECLINED;
        goto done;
    }

    if (st->load_step == NGX_OMNIBUS_PG_LOAD_DLQ) {
        route.data = (u_char *) PQgetvalue(res, i, 7);
        route.len = PQgetlength(res, i, 7);
        error.data = (u_char *) PQgetvalue(res, i, 9);
        error.len = PQgetlength(res, i, 9);

        ngx_omnibus_dlq_restore(st->zone, &offer, &route,
                     ngx_atoi((u_char *) PQgetvalue(res, i, 8),
                              PQgetlength(res, i, 8)),
                     &error,
                     (uint64_t) ngx_atoi((u_char *) PQgetvalue(res, i, 10),
                                         PQgetlength(res, i, 10)));
        rc = NGX_OK;
        goto done;
    }

    ngx_omnibus_dedup_identity(&offer, NGX_OMNIBUS_DEDUP_KEY);
    offer.shard = ngx_omnibus_ring_shard(st->zone, &offer.topic);

    qrc = ngx_omnibus_enqueue(st->zone, &offer, id, ngx_cycle->log);

    switch (qrc) {

    case NGX_OMNIBUS_QUEUED:
        (void) ngx_atomic_fetch_add(st->load_step == NGX_OMNIBUS_PG_ADOPT
                                    ? &sh->adopted : &sh->recovered, 1);
        rc = NGX_OK;
        break;

    case NGX_OMNIBUS_DUPLICATE:
        rc = NGX_OK;
        break;

    default:
        rc = NGX_AGAIN;
    }

done:

    while (k--) {
        PQfreemem(bytes[k]);
    }

    return rc;
}


static void
ngx_omnibus_pg_load_done(ngx_omnibus_pg_op_t *op, ngx_int_t rc)
{
    ngx_omnibus_store_sh_t  *sh;
    ngx_omnibus_pg_store_t  *st;

    st = op->data;
    sh = &st->zone->sh->store;

    st->loading = 0;

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "omnibus store \"%V\": %s stored messages failed, "
                      "retried: %s", &st->zone->name,
                      st->load_step == NGX_OMNIBUS_PG_ADOPT ? "adopting"
                                                            : "loading",
                      op->error);
        return;
    }

    if (st->load_full) {
        return;                              /* the tick goes on */
    }

    switch (st->load_step) {

    case NGX_OMNIBUS_PG_ADOPT:
        if (st->load_rows) {
            ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                          "omnibus store \"%V\": %ui message(s) of a silent "
                          "node adopted", &st->zone->name, st->load_rows);
            ngx_omnibus_pg_load_run(st, NGX_OMNIBUS_PG_ADOPT);
        }

        return;

    case NGX_OMNIBUS_PG_LOAD_MESSAGES:
        ngx_omnibus_pg_load_run(st, st->load_rows == NGX_OMNIBUS_PG_LOAD_ROWS
                                    ? NGX_OMNIBUS_PG_LOAD_MESSAGES
                                    : NGX_OMNIBUS_PG_LOAD_DLQ);
        return;

    default:
        break;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "omnibus store \"%V\": %uA stored message(s) loaded back, "
                  "the zone is ready", &st->zone->name, sh->recovered);

    sh->state = NGX_OMNIBUS_STORE_READY;
}
