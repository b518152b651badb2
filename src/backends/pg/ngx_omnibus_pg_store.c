
/*
 * omnibus_store: a row per accepted message in PostgreSQL.
 *
 * Rows are only ever inserted.  A message done with every route gets a
 * "done" row instead of an UPDATE or DELETE, and generations of both
 * tables are truncated in turn once all their messages are done (see
 * ngx_omnibus_pg_schema.c), so hours of load leave no dead tuples.
 *
 * Each worker gathers what it has to write (messages, done marks, dead
 * letters) in a batch, committed as one pipelined transaction every
 * "flush" or "batch" rows.  With mode=sync a published message waits in
 * its queue, held, and its producer waits for the answer, until its batch
 * is committed; with mode=async both go on at once and the batch follows.
 */


#include <ngx_omnibus_pg_store.h>


#define NGX_OMNIBUS_PG_TICK          1000
#define NGX_OMNIBUS_PG_ROTATE        2000
#define NGX_OMNIBUS_PG_BACKLOG_MAX   200000      /* rows, per worker */


/* a statement's parameters, text or (bytea) binary */

typedef struct {
    const char                 *value[13];
    int                         len[13];
    int                         format[13];
    int                         n;
} ngx_omnibus_pg_params_t;


/*
 * A column of the batch as a one-dimensional array in PostgreSQL's
 * binary format: ndim, has-nulls, element type, length, lower bound,
 * then each element's length and bytes.
 */

typedef struct {
    u_char                     *start;
    u_char                     *pos;
} ngx_omnibus_pg_array_t;


static ngx_int_t ngx_omnibus_pg_store_setup(ngx_omnibus_pg_pool_t *pool,
    PGconn *pg);
static void ngx_omnibus_pg_store_changed(ngx_omnibus_pg_pool_t *pool);
static ngx_int_t ngx_omnibus_pg_store_admit(ngx_omnibus_zone_t *zone,
    const char **why);
static ngx_int_t ngx_omnibus_pg_store_write(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *offer, u_char *id, ngx_omnibus_msg_t *held,
    ngx_omnibus_store_wait_t *wait);
static void ngx_omnibus_pg_store_detach(ngx_omnibus_store_wait_t *wait);
static void ngx_omnibus_pg_store_done(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *msg);
static void ngx_omnibus_pg_store_dead(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *msg, ngx_str_t *route, ngx_uint_t attempts,
    u_char *error, size_t len);
static void ngx_omnibus_pg_store_purged(ngx_omnibus_zone_t *zone);
static void ngx_omnibus_pg_store_replayed(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *msg);
static ngx_omnibus_pg_row_t *ngx_omnibus_pg_store_row(
    ngx_omnibus_pg_store_t *st, ngx_uint_t kind);
static ngx_int_t ngx_omnibus_pg_store_copy_msg(ngx_omnibus_pg_batch_t *b,
    ngx_omnibus_pg_row_t *row, ngx_omnibus_msg_t *msg);
static void ngx_omnibus_pg_store_free(ngx_omnibus_pg_batch_t *b);
static void ngx_omnibus_pg_store_flush(ngx_omnibus_pg_store_t *st);
static void ngx_omnibus_pg_store_flush_handler(ngx_event_t *ev);
static void ngx_omnibus_pg_int32(ngx_omnibus_pg_array_t *a, uint32_t v);
static ngx_int_t ngx_omnibus_pg_store_send(ngx_omnibus_pg_op_t *op,
    PGconn *pg);
static ngx_int_t ngx_omnibus_pg_store_send_rows(ngx_omnibus_pg_batch_t *b,
    PGconn *pg, ngx_pool_t *pool, ngx_uint_t which);
static void ngx_omnibus_pg_store_result(ngx_omnibus_pg_op_t *op,
    PGresult *res);
static void ngx_omnibus_pg_store_committed(ngx_omnibus_pg_op_t *op,
    ngx_int_t rc);
static void ngx_omnibus_pg_store_release(ngx_omnibus_pg_batch_t *b,
    ngx_uint_t ok);
static void ngx_omnibus_pg_store_again(ngx_omnibus_pg_store_t *st,
    ngx_omnibus_pg_batch_t *b);
static void ngx_omnibus_pg_store_tick(ngx_event_t *ev);
static ngx_int_t ngx_omnibus_pg_store_tick_send(ngx_omnibus_pg_op_t *op,
    PGconn *pg);
static void ngx_omnibus_pg_store_tick_result(ngx_omnibus_pg_op_t *op,
    PGresult *res);
static void ngx_omnibus_pg_store_tick_done(ngx_omnibus_pg_op_t *op,
    ngx_int_t rc);


/* omnibus_store ZONE URL [parameters] */

char *
ngx_omnibus_pg_store_parse(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value, ngx_uint_t n)
{
    char                    *rv;
    size_t                   size;
    ssize_t                  len;
    ngx_int_t                num;
    ngx_str_t                v, name, file;
    ngx_uint_t               i;
    ngx_omnibus_pg_store_t  *st;
    u_char                   pw[1024];

    if (zone->store) {
        return "is duplicate: the zone has a store already";
    }

    if (n == 0) {
        return "needs a postgresql:// URL";
    }

    st = ngx_pcalloc(cf->pool, sizeof(ngx_omnibus_pg_store_t));
    if (st == NULL) {
        return NGX_CONF_ERROR;
    }

    st->zone = zone;
    st->iface.sync = 1;
    st->iface.data = st;
    st->conf.size = 4;
    st->conf.overflow = 2;
    st->conf.recycle = 3600000;
    st->conf.timeout = 5000;
    st->batch = 512;
    st->flush = 2;
    st->retention = 7 * 86400;
    st->adopt_after = 60;
    st->breaker.failures = 5;
    st->breaker.timeout = 60000;
    st->breaker.successes = 3;

    ngx_str_set(&name, "omnibus");

    rv = ngx_omnibus_pg_conf_url(cf, &st->conf, &value[0], &name);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    for (i = 1; i < n; i++) {
        v = value[i];

        if (ngx_strncmp(v.data, "mode=", 5) == 0) {
            if (ngx_strcmp(v.data + 5, "sync") == 0) {
                st->iface.sync = 1;

            } else if (ngx_strcmp(v.data + 5, "async") == 0) {
                st->iface.sync = 0;

            } else {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(v.data, "pool=", 5) == 0) {
            num = ngx_atoi(v.data + 5, v.len - 5);
            if (num < 1 || num > 256) {
                goto invalid;
            }

            st->conf.size = num;
            continue;
        }

        if (ngx_strncmp(v.data, "overflow=", 9) == 0) {
            num = ngx_atoi(v.data + 9, v.len - 9);
            if (num == NGX_ERROR || num > 256) {
                goto invalid;
            }

            st->conf.overflow = num;
            continue;
        }

        if (ngx_strncmp(v.data, "batch=", 6) == 0) {
            num = ngx_atoi(v.data + 6, v.len - 6);
            if (num < 1 || num > 100000) {
                goto invalid;
            }

            st->batch = num;
            continue;
        }

        if (ngx_strncmp(v.data, "recycle=", 8) == 0
            || ngx_strncmp(v.data, "flush=", 6) == 0
            || ngx_strncmp(v.data, "timeout=", 8) == 0)
        {
            len = (v.data[0] == 'f') ? 6 : 8;
            num = ngx_parse_time(&(ngx_str_t) { v.len - len, v.data + len },
                                 0);
            if (num == NGX_ERROR || (num == 0 && v.data[0] != 'f')) {
                goto invalid;
            }

            if (v.data[0] == 'r') {
                st->conf.recycle = num;

            } else if (v.data[0] == 'f') {
                st->flush = num;

            } else {
                st->conf.timeout = num;
            }

            continue;
        }

        if (ngx_strncmp(v.data, "retention=", 10) == 0
            || ngx_strncmp(v.data, "adopt_after=", 12) == 0)
        {
            len = (v.data[0] == 'r') ? 10 : 12;
            num = ngx_parse_time(&(ngx_str_t) { v.len - len, v.data + len },
                                 1);
            if (num == NGX_ERROR || num == 0) {
                goto invalid;
            }

            if (v.data[0] == 'r') {
                st->retention = num;

            } else {
                st->adopt_after = num;
            }

            continue;
        }

        if (ngx_strncmp(v.data, "breaker=", 8) == 0) {
            v.data += 8;
            v.len -= 8;

            if (ngx_omnibus_breaker_parse(&v, &st->breaker) != NGX_OK) {
                v = value[i];
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(v.data, "password_file=", 14) == 0) {
            file.len = v.len - 14;
            file.data = v.data + 14;

            rv = ngx_omnibus_conf_secret(cf, "omnibus_store", &file, pw,
                                         sizeof(pw), &size);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            len = size;

            rv = ngx_omnibus_pg_conf_set(cf, &st->conf, "password", pw, len);
            ngx_explicit_memzero(pw, sizeof(pw));

            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "omnibus_store: unknown parameter \"%V\" (known: "
                           "mode, pool, overflow, recycle, batch, flush, "
                           "timeout, retention, adopt_after, breaker, "
                           "password_file)", &v);
        return NGX_CONF_ERROR;
    }

    /* the server ends a statement that outlives the timeout by itself */

    len = ngx_sprintf(pw, "-c statement_timeout=%M", st->conf.timeout) - pw;

    if (ngx_omnibus_pg_conf_set(cf, &st->conf, "options", pw, len)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    /*
     * gathered for flush, behind a transaction, then a connection opened
     * and a transaction run (its timer allows a second more)
     */
    st->iface.timeout = st->flush + 3 * (st->conf.timeout + 1000);

    st->iface.admit = ngx_omnibus_pg_store_admit;
    st->iface.write = ngx_omnibus_pg_store_write;
    st->iface.detach = ngx_omnibus_pg_store_detach;
    st->iface.done = ngx_omnibus_pg_store_done;
    st->iface.dead = ngx_omnibus_pg_store_dead;
    st->iface.purged = ngx_omnibus_pg_store_purged;
    st->iface.replayed = ngx_omnibus_pg_store_replayed;

    zone->store = &st->iface;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "omnibus_store: invalid \"%V\"", &v);
    return NGX_CONF_ERROR;
}


ngx_int_t
ngx_omnibus_pg_store_init_process(ngx_omnibus_zone_t *zone, ngx_str_t *node,
    ngx_cycle_t *cycle)
{
    ngx_omnibus_sh_t        *sh;
    ngx_omnibus_pg_store_t  *st;

    if (zone->store == NULL) {
        return NGX_OK;
    }

    st = zone->store->data;
    sh = zone->sh;

    st->node = *node;
    st->node_z = ngx_pnalloc(cycle->pool, node->len + 1);
    st->zone_z = ngx_pnalloc(cycle->pool, zone->name.len + 1);

    if (st->node_z == NULL || st->zone_z == NULL) {
        return NGX_ERROR;
    }

    (void) ngx_cpystrn((u_char *) st->node_z, node->data, node->len + 1);
    (void) ngx_cpystrn((u_char *) st->zone_z, zone->name.data,
                       zone->name.len + 1);

    ngx_queue_init(&st->again);

    st->pool.conf = &st->conf;
    st->proc = ngx_omnibus_store_proc(zone);

    if (st->proc == NULL) {
        st->proc = &st->own;
    }

    st->pool.up = &st->proc->up;
    st->pool.states = st->proc->connections;
    st->pool.errors = sh->store.errors;
    st->pool.setup = ngx_omnibus_pg_store_setup;
    st->pool.changed = ngx_omnibus_pg_store_changed;
    st->pool.data = st;

    st->pool.breaker.conf = st->breaker;
    st->pool.breaker.sh = &sh->store.breaker;
    st->pool.breaker.shpool = zone->shpool;
    st->pool.breaker.kind = "store";
    st->pool.breaker.name = &zone->name;
    st->pool.breaker.log = cycle->log;

    st->flush_ev.handler = ngx_omnibus_pg_store_flush_handler;
    st->flush_ev.data = st;
    st->flush_ev.log = cycle->log;

    st->now_ev.handler = ngx_omnibus_pg_store_flush_handler;
    st->now_ev.data = st;
    st->now_ev.log = cycle->log;

    st->tick.handler = ngx_omnibus_pg_store_tick;
    st->tick.data = st;
    st->tick.log = cycle->log;
    st->tick.cancelable = 1;

    if (ngx_omnibus_pg_init(&st->pool, cycle->log) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_add_timer(&st->tick, 10);

    return NGX_OK;
}


/*
 * A quitting worker has written what it could (its flush timer held it
 * while rows were left): what is still not written is said, and dropped.
 */

void
ngx_omnibus_pg_store_exit_process(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t                 left, i;
    ngx_queue_t               *q;
    ngx_omnibus_pg_row_t      *row;
    ngx_omnibus_store_wait_t  *w;
    ngx_omnibus_pg_batch_t  *b;
    ngx_omnibus_pg_store_t  *st;

    if (zone->store == NULL) {
        return;
    }

    st = zone->store->data;

    if (st->pool.conf == NULL) {
        return;
    }

    left = 0;

    if (st->filling) {
        ngx_queue_insert_tail(&st->again, &st->filling->queue);
        st->filling = NULL;
    }

    while (!ngx_queue_empty(&st->again)) {
        q = ngx_queue_head(&st->again);
        ngx_queue_remove(q);
        b = ngx_queue_data(q, ngx_omnibus_pg_batch_t, queue);

        /* no request can be answered any more */

        while (!ngx_queue_empty(&b->waits)) {
            q = ngx_queue_head(&b->waits);
            ngx_queue_remove(q);
            w = ngx_queue_data(q, ngx_omnibus_store_wait_t, queue);
            w->batch = NULL;
        }

        /* done marks lost only mean a delivery again after a restart */

        row = b->rows.elts;

        for (i = 0; i < b->rows.nelts; i++) {
            left += (row[i].kind == NGX_OMNIBUS_PG_MESSAGE
                     || row[i].kind == NGX_OMNIBUS_PG_DEAD);
        }

        ngx_omnibus_pg_store_release(b, 0);
        (void) ngx_atomic_fetch_add(&st->proc->backlog,
                                    -(ngx_atomic_int_t) b->messages);
        ngx_omnibus_pg_store_free(b);
    }

    if (left) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "omnibus store \"%V\": %ui row(s) could not be "
                      "written before the worker exited", &zone->name, left);
    }

    if (st->flush_ev.timer_set) {
        ngx_del_timer(&st->flush_ev);
    }

    if (st->now_ev.posted) {
        ngx_delete_posted_event(&st->now_ev);
    }

    if (st->tick.timer_set) {
        ngx_del_timer(&st->tick);
    }

    ngx_omnibus_pg_close(&st->pool);

    /* the slot is free: nothing of this worker counts any more */
    ngx_memzero(st->proc, sizeof(ngx_omnibus_store_proc_t));
}


/* a new connection: the schema (migrated once, by one node), statements */

static ngx_int_t
ngx_omnibus_pg_store_setup(ngx_omnibus_pg_pool_t *pool, PGconn *pg)
{
    ngx_omnibus_pg_store_t  *st;

    st = pool->data;

    return ngx_omnibus_pg_schema_send(pg, st->zone->sh->store.schema
                                          < NGX_OMNIBUS_PG_SCHEMA);
}


/* a connection is free, or the database came back: what waits may go */

static void
ngx_omnibus_pg_store_changed(ngx_omnibus_pg_pool_t *pool)
{
    ngx_omnibus_pg_store_t  *st;

    st = pool->data;

    if (pool->connected) {
        st->zone->sh->store.schema = NGX_OMNIBUS_PG_SCHEMA;

    } else {
        st->beating = 0;           /* not heard: adoption waits again */
    }

    if (st->filling || !ngx_queue_empty(&st->again)) {
        if (!st->now_ev.posted) {
            ngx_post_event(&st->now_ev, &ngx_posted_events);
        }
    }
}


static ngx_int_t
ngx_omnibus_pg_store_admit(ngx_omnibus_zone_t *zone, const char **why)
{
    ngx_omnibus_store_sh_t  *sh;
    ngx_omnibus_pg_store_t  *st;

    st = zone->store->data;
    sh = &zone->sh->store;

    if (sh->state != NGX_OMNIBUS_STORE_READY) {
        *why = "the store is loading the messages of the last run, "
               "retry";
        return NGX_DECLINED;
    }

    if (!st->iface.sync) {
        return NGX_OK;
    }

    if (!ngx_omnibus_pg_available(&st->pool)
        || (sh->breaker.state == NGX_OMNIBUS_BREAKER_OPEN
            && ngx_omnibus_breaker_open_for(&st->pool.breaker) > 1))
    {
        *why = "PostgreSQL cannot be reached, retry";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_omnibus_pg_store_write(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *offer, u_char *id, ngx_omnibus_msg_t *held,
    ngx_omnibus_store_wait_t *wait)
{
    u_char                  *p;
    ngx_omnibus_pg_row_t    *row;
    ngx_omnibus_pg_batch_t  *b;
    ngx_omnibus_pg_store_t  *st;

    st = zone->store->data;

    if (!st->iface.sync && st->backlog >= NGX_OMNIBUS_PG_BACKLOG_MAX) {
        (void) ngx_atomic_fetch_add(
                   &zone->sh->store.errors[NGX_OMNIBUS_PG_BACKLOG], 1);

        if (ngx_time() - st->logged >= NGX_OMNIBUS_LOG_THROTTLE) {
            st->logged = ngx_time();
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "omnibus store \"%V\": %ui rows wait to be "
                          "written, new messages are kept in memory only",
                          &zone->name, st->backlog);
        }

        return NGX_DECLINED;
    }

    row = ngx_omnibus_pg_store_row(st, NGX_OMNIBUS_PG_MESSAGE);
    if (row == NULL) {
        return NGX_ERROR;
    }

    b = st->filling;

    p = ngx_pnalloc(b->pool, offer->topic.len + offer->ctype.len
                             + offer->key.len + offer->payload.len);
    if (p == NULL) {
        b->rows.nelts--;
        st->rows--;
        return NGX_ERROR;
    }

    row->topic.data = p;
    row->topic.len = offer->topic.len;
    p = ngx_cpymem(p, offer->topic.data, offer->topic.len);
    row->ctype.data = p;
    row->ctype.len = offer->ctype.len;

    /* an offer without a key or a type may have NULL for them */

    if (offer->ctype.len) {
        p = ngx_cpymem(p, offer->ctype.data, offer->ctype.len);
    }

    row->key.data = p;
    row->key.len = offer->key.len;

    if (offer->key.len) {
        p = ngx_cpymem(p, offer->key.data, offer->key.len);
    }

    row->payload.data = p;
    row->payload.len = offer->payload.len;
    ngx_memcpy(p, offer->payload.data, offer->payload.len);

    ngx_memcpy(row->id, id, NGX_OMNIBUS_ID_LEN);
    row->priority = offer->priority;
    row->json = offer->json;
    row->time = ngx_omnibus_now_ms();
    row->held = held;
    row->dedup_on = offer->dedup_on;
    ngx_memcpy(row->dedup, offer->dedup, NGX_OMNIBUS_IDENTITY_LEN);

    b->messages++;
    st->backlog++;
    (void) ngx_atomic_fetch_add(&st->proc->backlog, 1);

    if (wait) {
        if (wait->batch == NULL) {
            wait->batch = b;
            ngx_queue_insert_tail(&b->waits, &wait->queue);
        }

        wait->rows++;
    }

    return NGX_OK;
}


static void
ngx_omnibus_pg_store_detach(ngx_omnibus_store_wait_t *wait)
{
    if (wait->batch) {
        ngx_queue_remove(&wait->queue);
        wait->batch = NULL;
    }
}


/* under the zone lock: a done mark, written with the next batch */

static void
ngx_omnibus_pg_store_done(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *msg)
{
    ngx_omnibus_pg_row_t  *row;

    row = ngx_omnibus_pg_store_row(zone->store->data, NGX_OMNIBUS_PG_DONE);

    if (row) {
        ngx_memcpy(row->id, msg->id, NGX_OMNIBUS_ID_LEN);
    }
}


static void
ngx_omnibus_pg_store_dead(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *msg,
    ngx_str_t *route, ngx_uint_t attempts, u_char *error, size_t len)
{
    ngx_omnibus_pg_row_t    *row;
    ngx_omnibus_pg_store_t  *st;

    st = zone->store->data;

    row = ngx_omnibus_pg_store_row(st, NGX_OMNIBUS_PG_DEAD);
    if (row == NULL) {
        return;
    }

    if (ngx_omnibus_pg_store_copy_msg(st->filling, row, msg) != NGX_OK) {
        row->kind = NGX_OMNIBUS_PG_SKIP;
        return;
    }

    if (route) {
        row->route = *route;            /* the configuration's, kept */

    } else {
        ngx_str_set(&row->route, "");
    }

    row->error.data = ngx_pnalloc(st->filling->pool, len);
    if (row->error.data == NULL) {
        row->kind = NGX_OMNIBUS_PG_SKIP;
        return;
    }

    ngx_memcpy(row->error.data, error, len);
    row->error.len = len;
    row->attempts = attempts;
    row->time = ngx_omnibus_now_ms();
}


static void
ngx_omnibus_pg_store_purged(ngx_omnibus_zone_t *zone)
{
    (void) ngx_omnibus_pg_store_row(zone->store->data, NGX_OMNIBUS_PG_PURGE);
}


static void
ngx_omnibus_pg_store_replayed(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *msg)
{
    ngx_omnibus_pg_row_t    *row;
    ngx_omnibus_pg_store_t  *st;

    st = zone->store->data;

    row = ngx_omnibus_pg_store_row(st, NGX_OMNIBUS_PG_REPLAYED);
    if (row == NULL) {
        return;
    }

    ngx_memcpy(row->id, msg->id, NGX_OMNIBUS_ID_LEN);

    /* queued again, so stored again */

    row = ngx_omnibus_pg_store_row(st, NGX_OMNIBUS_PG_MESSAGE);
    if (row == NULL) {
        return;
    }

    if (ngx_omnibus_pg_store_copy_msg(st->filling, row, msg) != NGX_OK) {
        row->kind = NGX_OMNIBUS_PG_SKIP;
        return;
    }

    row->time = ngx_omnibus_now_ms();
    st->filling->messages++;
    st->backlog++;
    (void) ngx_atomic_fetch_add(&st->proc->backlog, 1);
}


/* a row of the batch being filled; a full batch is sent after this turn */

static ngx_omnibus_pg_row_t *
ngx_omnibus_pg_store_row(ngx_omnibus_pg_store_t *st, ngx_uint_t kind)
{
    ngx_pool_t              *pool;
    ngx_omnibus_pg_row_t    *row;
    ngx_omnibus_pg_batch_t  *b;

    /*
     * Rows waiting while the database is away are bounded: past the cap a
     * done mark or dead letter is not kept (a message written behind is
     * bounded by write() already).
     */

    if (st->rows >= NGX_OMNIBUS_PG_BACKLOG_MAX
        && kind != NGX_OMNIBUS_PG_MESSAGE)
    {
        (void) ngx_atomic_fetch_add(
                   &st->zone->sh->store.errors[NGX_OMNIBUS_PG_BACKLOG], 1);
        return NULL;
    }

    b = st->filling;

    if (b == NULL) {
        pool = ngx_create_pool(16384, ngx_cycle->log);
        if (pool == NULL) {
            return NULL;
        }

        b = ngx_pcalloc(pool, sizeof(ngx_omnibus_pg_batch_t));
        if (b == NULL
            || ngx_array_init(&b->rows, pool, 64,
                              sizeof(ngx_omnibus_pg_row_t))
               != NGX_OK)
        {
            ngx_destroy_pool(pool);
            return NULL;
        }

        b->pool = pool;
        b->st = st;
        b->born = ngx_current_msec;
        ngx_queue_init(&b->waits);

        b->op.send = ngx_omnibus_pg_store_send;
        b->op.result = ngx_omnibus_pg_store_result;
        b->op.done = ngx_omnibus_pg_store_committed;
        b->op.data = b;

        st->filling = b;
    }

    row = ngx_array_push(&b->rows);
    if (row == NULL) {
        return NULL;
    }

    ngx_memzero(row, sizeof(ngx_omnibus_pg_row_t));
    row->kind = kind;
    st->rows++;

    /* at once when nothing commits (after this turn of the loop) */

    if (b->rows.nelts >= st->batch || st->committing == 0) {
        if (!st->now_ev.posted) {
            ngx_post_event(&st->now_ev, &ngx_posted_events);
        }

    } else if (!st->flush_ev.timer_set) {
        ngx_add_timer(&st->flush_ev, ngx_max(st->flush, 1));
    }

    return row;
}


/* under the zone lock: what a dead letter or a replay stores of it */

static ngx_int_t
ngx_omnibus_pg_store_copy_msg(ngx_omnibus_pg_batch_t *b,
    ngx_omnibus_pg_row_t *row, ngx_omnibus_msg_t *msg)
{
    u_char  *p;

    p = ngx_pnalloc(b->pool, msg->topic_len + msg->ctype_len + msg->key_len
                             + msg->len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(row->id, msg->id, NGX_OMNIBUS_ID_LEN);

    row->topic.data = p;
    row->topic.len = msg->topic_len;
    p = ngx_cpymem(p, ngx_omnibus_msg_topic(msg), msg->topic_len);
    row->ctype.data = p;
    row->ctype.len = msg->ctype_len;
    p = ngx_cpymem(p, ngx_omnibus_msg_ctype(msg), msg->ctype_len);
    row->key.data = p;
    row->key.len = msg->key_len;
    p = ngx_cpymem(p, ngx_omnibus_msg_key(msg), msg->key_len);
    row->payload.data = p;
    row->payload.len = msg->len;
    ngx_omnibus_msg_copy_payload(p, msg);

    row->priority = msg->priority;
    row->json = msg->json;

    return NGX_OK;
}


/* a batch is over: its rows leave the worker's count with its memory */

static void
ngx_omnibus_pg_store_free(ngx_omnibus_pg_batch_t *b)
{
    b->st->rows -= b->rows.nelts;
    ngx_destroy_pool(b->pool);
}


static void
ngx_omnibus_pg_store_flush_handler(ngx_event_t *ev)
{
    ngx_omnibus_pg_store_flush(ev->data);
}


/*
 * Send the batch being filled, and batches to write again, while the
 * database takes them.  Group commit: while a batch of the worker
 * commits, rows gather in the next one, sent when that commit is in,
 * when it holds "batch" rows, or when its first row has waited "flush"
 * (then transactions overlap, on the pool's other connections).
 */

static void
ngx_omnibus_pg_store_flush(ngx_omnibus_pg_store_t *st)
{
    ngx_msec_t               wait;
    ngx_queue_t             *q;
    ngx_omnibus_pg_pool_t   *pool;
    ngx_omnibus_pg_batch_t  *b;

    pool = &st->pool;

    for ( ;; ) {
        if (!ngx_queue_empty(&st->again)) {
            q = ngx_queue_head(&st->again);
            b = ngx_queue_data(q, ngx_omnibus_pg_batch_t, queue);

        } else if (st->filling) {
            b = st->filling;
            q = NULL;

            if (st->committing && b->rows.nelts < st->batch
                && ngx_current_msec - b->born < st->flush)
            {
                break;                       /* committed() sends it */
            }

        } else {
            break;
        }

        if (ngx_queue_empty(&pool->idle)
            && pool->nconns >= pool->conf->size + pool->conf->overflow)
        {
            break;                           /* changed() calls again */
        }

        if (!ngx_omnibus_pg_available(pool)
            || ngx_omnibus_breaker_admit(&pool->breaker, &b->probe, &wait)
               != NGX_OK)
        {
            if (st->iface.sync && st->filling) {
                /* producers waiting for a commit get their answer now */
                b = st->filling;
                st->filling = NULL;
                ngx_omnibus_pg_store_release(b, 0);
                ngx_omnibus_pg_store_again(st, b);
            }

            break;                           /* the tick tries again */
        }

        if (q) {
            ngx_queue_remove(q);

        } else {
            st->filling = NULL;
        }

        st->committing++;

        if (ngx_omnibus_pg_run(pool, &b->op) != NGX_OK) {
            st->committing--;
            ngx_queue_insert_head(&st->again, &b->queue);
            break;
        }
    }

    if (st->flush_ev.timer_set) {
        ngx_del_timer(&st->flush_ev);
    }

    /*
     * Rows left to write hold a quitting worker, unless nothing can be
     * written (exit_process says what is lost then).
     */

    if (ngx_exiting && st->quit == 0) {
        st->quit = ngx_current_msec;
    }

    /*
     * Rows left to write hold a quitting worker for a timeout at most,
     * and not while nothing can be written (exit_process says what is
     * lost then).
     */

    if (st->filling || !ngx_queue_empty(&st->again)) {
        st->flush_ev.cancelable = ngx_exiting
                                  && (ngx_current_msec - st->quit
                                      > st->conf.timeout
                                      || (st->committing == 0
                                          && !ngx_omnibus_pg_available(pool)));

        ngx_add_timer(&st->flush_ev,
                      ngx_exiting ? 100
                      : ngx_omnibus_pg_available(pool) ? ngx_max(st->flush, 1)
                      : NGX_OMNIBUS_PG_TICK);
    }
}


static void
ngx_omnibus_pg_param(ngx_omnibus_pg_params_t *pp, const char *value)
{
    pp->value[pp->n] = value;
    pp->len[pp->n] = 0;
    pp->format[pp->n] = 0;
    pp->n++;
}


static void
ngx_omnibus_pg_param_bytes(ngx_omnibus_pg_params_t *pp, ngx_str_t *value)
{
    pp->value[pp->n] = value->len ? (char *) value->data : "";
    pp->len[pp->n] = value->len;
    pp->format[pp->n] = 1;
    pp->n++;
}


/*
 * Text for a text column, NUL-ended: a byte that is not UTF-8 (a
 * webhook's error text may hold any) would fail the whole batch, so it
 * becomes '?'.
 */

static const char *
ngx_omnibus_pg_text(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char  *p, *start, *last, *text, *q;

    text = ngx_pnalloc(pool, s->len + 1);
    if (text == NULL) {
        return "";
    }

    p = s->data;
    last = s->data + s->len;
    q = text;

    while (p < last) {
        if (*p < 0x80) {
            *q++ = (*p == '\0') ? '?' : *p;
            p++;
            continue;
        }

        start = p;

        if (ngx_utf8_decode(&p, last - p) > 0x10ffff) {
            *q++ = '?';
            p = start + 1;
            continue;
        }

        q = ngx_cpymem(q, start, p - start);
    }

    *q = '\0';

    return (const char *) text;
}


static ngx_int_t
ngx_omnibus_pg_array(ngx_pool_t *pool, ngx_omnibus_pg_array_t *a, Oid type,
    ngx_uint_t n, size_t bytes)
{
    a->start = ngx_pnalloc(pool, 20 + 4 * n + bytes);
    if (a->start == NULL) {
        return NGX_ERROR;
    }

    a->pos = a->start;

    /* no elements: no dimension either */

    ngx_omnibus_pg_int32(a, n ? 1 : 0);
    ngx_omnibus_pg_int32(a, 0);
    ngx_omnibus_pg_int32(a, type);

    if (n) {
        ngx_omnibus_pg_int32(a, n);
        ngx_omnibus_pg_int32(a, 1);
    }

    return NGX_OK;
}


static void
ngx_omnibus_pg_int32(ngx_omnibus_pg_array_t *a, uint32_t v)
{
    *a->pos++ = (u_char) (v >> 24);
    *a->pos++ = (u_char) (v >> 16);
    *a->pos++ = (u_char) (v >> 8);
    *a->pos++ = (u_char) v;
}


static void
ngx_omnibus_pg_element(ngx_omnibus_pg_array_t *a, u_char *data, size_t len)
{
    ngx_omnibus_pg_int32(a, len);
    a->pos = ngx_cpymem(a->pos, data, len);
}


static void
ngx_omnibus_pg_element_int(ngx_omnibus_pg_array_t *a, uint64_t v,
    size_t len)
{
    ngx_omnibus_pg_int32(a, len);

    while (len--) {
        *a->pos++ = (u_char) (v >> (8 * len));
    }
}


/*
 * A batch's statements: its messages and its done marks in one statement
 * of arrays (statements, not rows, are what cost the server); dead
 * letters, purges and replays, rare, one each, in order.
 */

static ngx_int_t
ngx_omnibus_pg_store_send(ngx_omnibus_pg_op_t *op, PGconn *pg)
{
    size_t                    bytes[6];
    ngx_int_t                 n;
    ngx_uint_t                i, k, nmsg, ndone;
    ngx_pool_t               *pool;
    ngx_omnibus_pg_row_t     *row;
    ngx_omnibus_pg_batch_t   *b;
    ngx_omnibus_pg_store_t   *st;
    ngx_omnibus_pg_array_t    col[9];
    ngx_omnibus_pg_params_t   pp;

    static Oid  types[8] = { 25, 25, 21, 17, 17, 17, 16, 20 };

    b = op->data;
    st = b->st;
    row = b->rows.elts;
    n = NGX_ERROR;

    /* libpq copies the parameters: what is built here goes after sending */

    pool = ngx_create_pool(16384, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    /* from here on, the time to commit */
    b->started = ngx_omnibus_now_us();
    b->statements = 0;

    if (ngx_omnibus_pg_store_send_rows(b, pg, pool, NGX_OMNIBUS_PG_REPLAYED)
        != NGX_OK)
    {
        goto done;
    }

    nmsg = 0;
    ndone = 0;
    ngx_memzero(bytes, sizeof(bytes));

    for (i = 0; i < b->rows.nelts; i++) {
        if (row[i].kind == NGX_OMNIBUS_PG_MESSAGE) {
            nmsg++;
            bytes[0] += row[i].topic.len;
            bytes[1] += row[i].ctype.len;
            bytes[2] += row[i].key.len;
            bytes[3] += row[i].payload.len;

        } else if (row[i].kind == NGX_OMNIBUS_PG_DONE) {
            ndone++;
        }
    }

    if (nmsg + ndone) {
        if (ngx_omnibus_pg_array(pool, &col[0], types[0], nmsg,
                                 nmsg * NGX_OMNIBUS_ID_LEN) != NGX_OK
            || ngx_omnibus_pg_array(pool, &col[1], types[1], nmsg, bytes[0])
               != NGX_OK
            || ngx_omnibus_pg_array(pool, &col[2], types[2], nmsg, nmsg * 2)
               != NGX_OK
            || ngx_omnibus_pg_array(pool, &col[3], types[3], nmsg, bytes[1])
               != NGX_OK
            || ngx_omnibus_pg_array(pool, &col[4], types[4], nmsg, bytes[2])
               != NGX_OK
            || ngx_omnibus_pg_array(pool, &col[5], types[5], nmsg, bytes[3])
               != NGX_OK
            || ngx_omnibus_pg_array(pool, &col[6], types[6], nmsg, nmsg)
               != NGX_OK
            || ngx_omnibus_pg_array(pool, &col[7], types[7], nmsg, nmsg * 8)
               != NGX_OK
            || ngx_omnibus_pg_array(pool, &col[8], types[0], ndone,
                                    ndone * NGX_OMNIBUS_ID_LEN)
               != NGX_OK)
        {
            goto done;
        }

        for (i = 0; i < b->rows.nelts; i++) {
            if (row[i].kind == NGX_OMNIBUS_PG_DONE) {
                ngx_omnibus_pg_element(&col[8], row[i].id,
                                       NGX_OMNIBUS_ID_LEN);
                continue;
            }

            if (row[i].kind != NGX_OMNIBUS_PG_MESSAGE) {
                continue;
            }

            ngx_omnibus_pg_element(&col[0], row[i].id, NGX_OMNIBUS_ID_LEN);
            ngx_omnibus_pg_element(&col[1], row[i].topic.data,
                                   row[i].topic.len);
            ngx_omnibus_pg_element_int(&col[2], row[i].priority, 2);
            ngx_omnibus_pg_element(&col[3], row[i].ctype.data,
                                   row[i].ctype.len);
            ngx_omnibus_pg_element(&col[4], row[i].key.data, row[i].key.len);
            ngx_omnibus_pg_element(&col[5], row[i].payload.data,
                                   row[i].payload.len);
            ngx_omnibus_pg_element_int(&col[6], row[i].json ? 1 : 0, 1);
            ngx_omnibus_pg_element_int(&col[7], row[i].time, 8);
        }

        pp.n = 0;
        ngx_omnibus_pg_param(&pp, st->node_z);
        ngx_omnibus_pg_param(&pp, st->zone_z);

        for (k = 0; k < 9; k++) {
            pp.value[pp.n] = (char *) col[k].start;
            pp.len[pp.n] = col[k].pos - col[k].start;
            pp.format[pp.n] = 1;
            pp.n++;
        }

        if (ngx_omnibus_pg_send(pg, "omnibus_write", pp.n, pp.value,
                                pp.len, pp.format)
            != NGX_OK)
        {
            goto done;
        }

        b->statements++;
    }

    if (ngx_omnibus_pg_store_send_rows(b, pg, pool, NGX_OMNIBUS_PG_DEAD)
        == NGX_OK)
    {
        n = b->statements;
    }

done:

    ngx_destroy_pool(pool);

    return n;
}


/*
 * The rare rows, one statement each: replays first (they take a done
 * mark back before this batch's), then dead letters and purges in order.
 */

static ngx_int_t
ngx_omnibus_pg_store_send_rows(ngx_omnibus_pg_batch_t *b, PGconn *pg,
    ngx_pool_t *pool, ngx_uint_t which)
{
    ngx_uint_t                i;
    const char               *stmt;
    ngx_omnibus_pg_row_t     *row;
    ngx_omnibus_pg_store_t   *st;
    ngx_omnibus_pg_params_t   pp;
    u_char                    prio[NGX_INT_T_LEN + 1];
    u_char                    num[NGX_INT_T_LEN + 1];
    u_char                    tm[NGX_INT64_LEN + 1];
    u_char                    id[NGX_OMNIBUS_ID_LEN + 1];

    st = b->st;
    row = b->rows.elts;

    id[NGX_OMNIBUS_ID_LEN] = '\0';

    for (i = 0; i < b->rows.nelts; i++, row++) {

        /* libpq copies the parameters: the buffers can be reused */

        ngx_memcpy(id, row->id, NGX_OMNIBUS_ID_LEN);

        pp.n = 0;
        ngx_omnibus_pg_param(&pp, st->node_z);
        ngx_omnibus_pg_param(&pp, st->zone_z);
        ngx_omnibus_pg_param(&pp, (char *) id);

        if ((which == NGX_OMNIBUS_PG_REPLAYED)
            != (row->kind == NGX_OMNIBUS_PG_REPLAYED))
        {
            continue;
        }

        switch (row->kind) {

        case NGX_OMNIBUS_PG_DEAD:
            stmt = "omnibus_dead";
            (void) ngx_sprintf(prio, "%ui%Z", row->priority);
            (void) ngx_sprintf(num, "%ui%Z", row->attempts);
            (void) ngx_sprintf(tm, "%uL%Z", row->time);

            ngx_omnibus_pg_param(&pp, ngx_omnibus_pg_text(pool, &row->route));
            ngx_omnibus_pg_param(&pp, ngx_omnibus_pg_text(pool, &row->topic));
            ngx_omnibus_pg_param(&pp, (char *) prio);
            ngx_omnibus_pg_param_bytes(&pp, &row->ctype);
            ngx_omnibus_pg_param_bytes(&pp, &row->key);
            ngx_omnibus_pg_param_bytes(&pp, &row->payload);
            ngx_omnibus_pg_param(&pp, row->json ? "t" : "f");
            ngx_omnibus_pg_param(&pp, (char *) num);
            ngx_omnibus_pg_param(&pp, ngx_omnibus_pg_text(pool, &row->error));
            ngx_omnibus_pg_param(&pp, (char *) tm);
            break;

        case NGX_OMNIBUS_PG_PURGE:
            stmt = "omnibus_purge";
            pp.n = 2;
            break;

        case NGX_OMNIBUS_PG_REPLAYED:
            stmt = "omnibus_replayed";
            break;

        default:
            continue;
        }

        if (ngx_omnibus_pg_send(pg, stmt, pp.n, pp.value, pp.len,
                                pp.format)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        b->statements++;
    }

    return NGX_OK;
}


static void
ngx_omnibus_pg_store_result(ngx_omnibus_pg_op_t *op, PGresult *res)
{
    (void) ngx_omnibus_pg_check(op, res, NGX_OMNIBUS_PG_QUERY);
}


/* the batch's transaction is over: committed (NGX_OK) or not */

static void
ngx_omnibus_pg_store_committed(ngx_omnibus_pg_op_t *op, ngx_int_t rc)
{
    size_t                   len;
    ngx_uint_t               i, ops[NGX_OMNIBUS_STORE_OPS];
    ngx_omnibus_sh_t        *sh;
    ngx_omnibus_pg_row_t    *row;
    ngx_omnibus_pg_batch_t  *b;
    ngx_omnibus_pg_store_t  *st;

    b = op->data;
    st = b->st;
    sh = st->zone->sh;

    st->committing--;

    ngx_omnibus_breaker_record(&st->pool.breaker, b->probe, rc != NGX_OK);
    b->probe = 0;

    if (rc != NGX_OK) {
        (void) ngx_atomic_fetch_add(&sh->store.errors[op->reason], 1);

        len = ngx_strlen(op->error);

        while (len && (op->error[len - 1] == '\n')) {
            len--;
        }

        if (ngx_time() - st->logged >= NGX_OMNIBUS_LOG_THROTTLE
            || op->reason == NGX_OMNIBUS_PG_QUERY)
        {
            st->logged = ngx_time();
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "omnibus store \"%V\": a batch of %ui row(s) "
                          "was not written: %*s", &st->zone->name,
                          b->rows.nelts, len, op->error);
        }

        /* refused publishes are answered; the rest is written again */

        ngx_omnibus_pg_store_release(b, 0);
        op->error[0] = '\0';
        ngx_omnibus_pg_store_again(st, b);

        if (!st->tick.timer_set && !ngx_exiting) {
            ngx_add_timer(&st->tick, NGX_OMNIBUS_PG_TICK);
        }

        return;
    }

    ngx_omnibus_histogram_observe(&sh->store.commit,
                                  ngx_omnibus_now_us() - b->started);
    ngx_omnibus_histogram_observe_rows(&sh->store.batch, b->rows.nelts);

    ngx_memzero(ops, sizeof(ops));
    row = b->rows.elts;

    for (i = 0; i < b->rows.nelts; i++) {
        switch (row[i].kind) {
        case NGX_OMNIBUS_PG_MESSAGE:
            ops[0]++;
            break;
        case NGX_OMNIBUS_PG_DONE:
            ops[1]++;
            break;
        case NGX_OMNIBUS_PG_DEAD:
            ops[2]++;
            break;
        case NGX_OMNIBUS_PG_SKIP:
            break;
        default:
            ops[3]++;
        }
    }

    for (i = 0; i < NGX_OMNIBUS_STORE_OPS; i++) {
        if (ops[i]) {
            (void) ngx_atomic_fetch_add(&sh->store.rows[i], ops[i]);
        }
    }

    ngx_omnibus_pg_store_release(b, 1);

    st->backlog -= b->messages;
    (void) ngx_atomic_fetch_add(&st->proc->backlog,
                                -(ngx_atomic_int_t) b->messages);

    ngx_omnibus_pg_store_free(b);
}


/*
 * Held messages go on (ok) or leave their queue, producers waiting for
 * them get their answer.  After a failure only what was not held stays
 * in the batch, to be written again: a refused publish was answered 503.
 */

static void
ngx_omnibus_pg_store_release(ngx_omnibus_pg_batch_t *b, ngx_uint_t ok)
{
    uint64_t                   notify[NGX_OMNIBUS_MAX_SHARDS / 64];
    ngx_uint_t                 i, s, held;
    ngx_queue_t               *q;
    ngx_omnibus_sh_t          *sh;
    ngx_omnibus_zone_t        *zone;
    ngx_omnibus_pg_row_t      *row;
    ngx_omnibus_store_wait_t  *w;

    zone = b->st->zone;
    sh = zone->sh;
    row = b->rows.elts;
    held = 0;

    ngx_memzero(notify, sizeof(notify));

    for (i = 0; i < b->rows.nelts; i++) {
        if (row[i].held) {
            held = 1;
            break;
        }
    }

    if (held) {
        ngx_shmtx_lock(&zone->shpool->mutex);

        for (i = 0; i < b->rows.nelts; i++) {
            if (row[i].held == NULL) {
                continue;
            }

            s = row[i].held->shard;
            notify[s / 64] |= (uint64_t) 1 << (s % 64);

            /* a held message can only have been let go by us */

            if (row[i].held->held
                && ngx_memcmp(row[i].held->id, row[i].id, NGX_OMNIBUS_ID_LEN)
                   == 0)
            {
                ngx_omnibus_queue_release_locked(zone, row[i].held, ok,
                                     row[i].dedup_on ? row[i].dedup : NULL);
            }

            row[i].held = NULL;

            /*
             * Refused, yet its row may have committed (a commit whose
             * answer was lost): a done mark makes sure it ends.
             */

            if (!ok) {
                row[i].kind = NGX_OMNIBUS_PG_DONE;
                b->messages--;
                b->st->backlog--;
                (void) ngx_atomic_fetch_add(&b->st->proc->backlog, -1);
            }
        }

        ngx_shmtx_unlock(&zone->shpool->mutex);

        if (ok) {
            for (s = 0; s < sh->cap_shards; s++) {
                if (notify[s / 64] & ((uint64_t) 1 << (s % 64))) {
                    ngx_omnibus_notify(zone, s);
                }
            }
        }
    }

    while (!ngx_queue_empty(&b->waits)) {
        q = ngx_queue_head(&b->waits);
        ngx_queue_remove(q);
        w = ngx_queue_data(q, ngx_omnibus_store_wait_t, queue);

        w->batch = NULL;

        if (!ok) {
            w->failed = w->rows;
        }

        w->rows = 0;
        w->handler(w);
    }
}


/* a batch that failed: what is left in it is written again later */

static void
ngx_omnibus_pg_store_again(ngx_omnibus_pg_store_t *st,
    ngx_omnibus_pg_batch_t *b)
{
    ngx_uint_t             i;
    ngx_omnibus_pg_row_t  *row;

    row = b->rows.elts;

    for (i = 0; i < b->rows.nelts; i++) {
        if (row[i].kind != NGX_OMNIBUS_PG_SKIP) {
            ngx_queue_insert_tail(&st->again, &b->queue);
            return;
        }
    }

    ngx_omnibus_pg_store_free(b);
}


/*
 * Once a second in every worker: write again what failed, load a new
 * zone's rows; and in worker 0, the node's heartbeat and the rotation of
 * generations.
 */

static void
ngx_omnibus_pg_store_tick(ngx_event_t *ev)
{
    ngx_omnibus_sh_t        *sh;
    ngx_omnibus_pg_store_t  *st;

    st = ev->data;
    sh = st->zone->sh;

    if (ngx_exiting) {
        return;
    }

    ngx_add_timer(&st->tick, NGX_OMNIBUS_PG_TICK);

    if (!ngx_queue_empty(&st->again)) {
        ngx_omnibus_pg_store_flush(st);
    }

    if (sh->store.state != NGX_OMNIBUS_STORE_READY) {
        ngx_omnibus_pg_load(st);

    } else if (ngx_worker == 0
               && ngx_omnibus_cluster_leads(st->zone) != NGX_DECLINED)
    {
        /* with a cluster lock, only its holder adopts */
        ngx_omnibus_pg_adopt(st);
    }

    if (!ngx_omnibus_pg_available(&st->pool)) {
        st->beating = 0;
    }

    if (ngx_worker != 0 || st->ticking
        || !ngx_omnibus_pg_available(&st->pool)
        || sh->store.schema < NGX_OMNIBUS_PG_SCHEMA)
    {
        return;
    }

    st->tick_op.send = ngx_omnibus_pg_store_tick_send;
    st->tick_op.result = ngx_omnibus_pg_store_tick_result;
    st->tick_op.done = ngx_omnibus_pg_store_tick_done;
    st->tick_op.data = st;

    /* set first: a run that fails at once has called done() already */

    st->ticking = 1;

    if (ngx_omnibus_pg_run(&st->pool, &st->tick_op) != NGX_OK) {
        st->ticking = 0;
    }
}


static ngx_int_t
ngx_omnibus_pg_store_tick_send(ngx_omnibus_pg_op_t *op, PGconn *pg)
{
    ngx_int_t                n;
    const char              *v[3];
    ngx_omnibus_pg_store_t  *st;
    u_char                   tm[NGX_INT64_LEN + 1];

    st = op->data;

    v[0] = st->node_z;

    if (ngx_omnibus_pg_send(pg, "omnibus_beat", 1, v, NULL, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    n = 1;

    if (ngx_current_msec - st->rotated >= NGX_OMNIBUS_PG_ROTATE) {
        st->rotated = ngx_current_msec;

        (void) ngx_sprintf(tm, "%uL%Z", ngx_omnibus_now_ms()
                                        - (uint64_t) st->retention * 1000);
        v[1] = st->zone_z;
        v[2] = (char *) tm;

        /*
         * The rotation is the database's: with a cluster lock, only its
         * holder runs it; without, omnibus_rotate() takes an advisory one.
         */

        if (ngx_omnibus_cluster_leads(st->zone) != NGX_DECLINED) {
            if (ngx_omnibus_pg_send(pg, "omnibus_rotate", 0, NULL, NULL,
                                    NULL)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            n++;
        }

        if (ngx_omnibus_pg_send(pg, "omnibus_expire", 3, v, NULL, NULL)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        n++;
    }

    return n;
}


static void
ngx_omnibus_pg_store_tick_result(ngx_omnibus_pg_op_t *op, PGresult *res)
{
    ngx_int_t                gen;
    ngx_omnibus_pg_store_t  *st;

    st = op->data;

    /* the rotation's answer is the generation (NULL: another node's) */

    if (ngx_omnibus_pg_check(op, res, NGX_OMNIBUS_PG_QUERY) != NGX_OK
        || PQresultStatus(res) != PGRES_TUPLES_OK
        || PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
    {
        return;
    }

    gen = ngx_atoi((u_char *) PQgetvalue(res, 0, 0), PQgetlength(res, 0, 0));

    if (gen != NGX_ERROR) {
        st->zone->sh->store.generation = gen;
    }
}


static void
ngx_omnibus_pg_store_tick_done(ngx_omnibus_pg_op_t *op, ngx_int_t rc)
{
    ngx_omnibus_pg_store_t  *st;

    st = op->data;
    st->ticking = 0;

    /* adoption trusts others' silence only while we are heard ourselves */

    if (rc != NGX_OK) {
        st->beating = 0;

    } else if (st->beating == 0) {
        st->beating = ngx_current_msec;
    }

    if (rc != NGX_OK && op->reason == NGX_OMNIBUS_PG_QUERY) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "omnibus store \"%V\": heartbeat or rotation failed: "
                      "%s", &st->zone->name, op->error);
    }
}
