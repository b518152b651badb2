
/*
 * omnibus_store: a row per accepted message in PostgreSQL.
 *
 * Rows are only ever inserted.  A message done with every route gets a
 * "done" row instead of an UPDATE or DELETE; both tables are partitioned
 * into NGX_OMNIBUS_PG_SLOTS generations, written in turn, and a
 * generation whose messages are all done is truncated when its turn comes
 * again (omnibus_rotate(), one node at a time under an advisory lock).
 * So hours of load leave no dead tuples behind, as PgQ rotates its
 * tables.
 *
 * Each worker gathers what it has to write (messages, done marks, dead
 * letters) in a batch, committed as one pipelined transaction every
 * "flush" or "batch" rows.  With mode=sync a published message waits in
 * its queue, held, and its producer waits for the answer, until its batch
 * is committed; with mode=async both go on at once and the batch follows.
 *
 * A zone that starts empty loads this node's unfinished rows back, in id
 * order, before it is ready (the loader is one worker, its progress in
 * the zone so that a successor resumes it).
 */


#include <ngx_omnibus_pg.h>
#include <ngx_omnibus_pg_store.h>


#define NGX_OMNIBUS_PG_SCHEMA        1
#define NGX_OMNIBUS_PG_LOCK          "7236420181"   /* advisory lock key */
#define NGX_OMNIBUS_PG_LOAD_ROWS     500
#define NGX_OMNIBUS_PG_TICK          1000
#define NGX_OMNIBUS_PG_ROTATE        2000
#define NGX_OMNIBUS_PG_BACKLOG_MAX   200000      /* rows, per worker */


typedef enum {
    NGX_OMNIBUS_PG_MESSAGE = 0,
    NGX_OMNIBUS_PG_DONE,
    NGX_OMNIBUS_PG_DEAD,
    NGX_OMNIBUS_PG_PURGE,
    NGX_OMNIBUS_PG_REPLAYED,
    NGX_OMNIBUS_PG_SKIP                      /* refused, not written */
} ngx_omnibus_pg_kind_e;


typedef struct {
    ngx_uint_t                  kind;
    ngx_str_t                   topic;
    ngx_str_t                   ctype;
    ngx_str_t                   key;
    ngx_str_t                   payload;
    ngx_str_t                   route;
    ngx_str_t                   error;
    ngx_uint_t                  priority;
    ngx_uint_t                  json;
    ngx_uint_t                  attempts;
    uint64_t                    time;        /* born or failed, ms */
    ngx_omnibus_msg_t          *held;
    ngx_uint_t                  dedup_on;
    u_char                      dedup[NGX_OMNIBUS_IDENTITY_LEN];
    u_char                      id[NGX_OMNIBUS_ID_LEN];
} ngx_omnibus_pg_row_t;


typedef struct ngx_omnibus_pg_store_s  ngx_omnibus_pg_store_t;

typedef struct {
    ngx_omnibus_pg_op_t         op;
    ngx_omnibus_pg_store_t     *st;
    ngx_pool_t                 *pool;
    ngx_array_t                 rows;        /* ngx_omnibus_pg_row_t */
    ngx_queue_t                 waits;       /* ngx_omnibus_store_wait_t */
    ngx_queue_t                 queue;       /* to be written again */
    ngx_uint_t                  messages;    /* rows in the backlog */
    ngx_uint_t                  probe;       /* the breaker's */
    uint64_t                    started;     /* us */
} ngx_omnibus_pg_batch_t;


struct ngx_omnibus_pg_store_s {
    ngx_omnibus_store_t         iface;       /* the zone's view */
    ngx_omnibus_zone_t         *zone;
    ngx_omnibus_pg_conf_t       conf;
    ngx_omnibus_breaker_conf_t  breaker;
    ngx_uint_t                  batch;
    ngx_msec_t                  flush;
    time_t                      retention;
    time_t                      adopt_after;

    /* worker-local */
    ngx_omnibus_pg_pool_t       pool;
    ngx_str_t                   node;
    char                       *node_z;      /* NUL-ended, for libpq */
    char                       *zone_z;
    ngx_omnibus_pg_batch_t     *filling;
    ngx_queue_t                 again;       /* failed, async: write again */
    ngx_uint_t                  committing;  /* batches sent */
    ngx_uint_t                  backlog;     /* message rows not committed */
    ngx_event_t                 flush_ev;    /* flush interval */
    ngx_event_t                 now_ev;      /* posted: a full batch */
    ngx_event_t                 tick;
    ngx_msec_t                  rotated;
    time_t                      logged;
    ngx_uint_t                  loading;     /* a load query is out */
    ngx_uint_t                  ticking;     /* heartbeat/rotation is out */
    ngx_omnibus_pg_op_t         load_op;
    ngx_omnibus_pg_op_t         tick_op;
    ngx_uint_t                  load_dlq;    /* the load's step */
    ngx_uint_t                  load_rows;
    ngx_uint_t                  load_full;   /* the zone had no room */
};


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
static void ngx_omnibus_pg_store_flush(ngx_omnibus_pg_store_t *st);
static void ngx_omnibus_pg_store_flush_handler(ngx_event_t *ev);
static ngx_int_t ngx_omnibus_pg_store_send(ngx_omnibus_pg_op_t *op,
    PGconn *pg);
static void ngx_omnibus_pg_store_result(ngx_omnibus_pg_op_t *op,
    PGresult *res);
static void ngx_omnibus_pg_store_committed(ngx_omnibus_pg_op_t *op,
    ngx_int_t rc);
static void ngx_omnibus_pg_store_release(ngx_omnibus_pg_batch_t *b,
    ngx_uint_t ok);
static void ngx_omnibus_pg_store_again(ngx_omnibus_pg_store_t *st,
    ngx_omnibus_pg_batch_t *b);
static void ngx_omnibus_pg_store_tick(ngx_event_t *ev);
static void ngx_omnibus_pg_store_load(ngx_omnibus_pg_store_t *st);
static ngx_int_t ngx_omnibus_pg_store_load_send(ngx_omnibus_pg_op_t *op,
    PGconn *pg);
static void ngx_omnibus_pg_store_load_result(ngx_omnibus_pg_op_t *op,
    PGresult *res);
static void ngx_omnibus_pg_store_load_done(ngx_omnibus_pg_op_t *op,
    ngx_int_t rc);
static ngx_int_t ngx_omnibus_pg_store_tick_send(ngx_omnibus_pg_op_t *op,
    PGconn *pg);
static void ngx_omnibus_pg_store_tick_result(ngx_omnibus_pg_op_t *op,
    PGresult *res);
static void ngx_omnibus_pg_store_tick_done(ngx_omnibus_pg_op_t *op,
    ngx_int_t rc);


/*
 * The schema, version 1.  Every table has "node" first in its primary key:
 * it is the distribution column under Citus (rows of a node together,
 * every query of a node on one shard), and plain PostgreSQL runs the same
 * SQL.  Generations are list partitions of "slot".
 */

static const char  ngx_omnibus_pg_migrate[] =
"DO $omnibus$\n"
"DECLARE\n"
"    s integer;\n"
"BEGIN\n"
"    CREATE TABLE IF NOT EXISTS omnibus_schema (\n"
"        version integer PRIMARY KEY,\n"
"        applied timestamptz NOT NULL DEFAULT now());\n"
"    IF EXISTS (SELECT 1 FROM omnibus_schema WHERE version >= 1) THEN\n"
"        RETURN;\n"
"    END IF;\n"
"    CREATE TABLE omnibus_generation (\n"
"        one boolean PRIMARY KEY DEFAULT true CHECK (one),\n"
"        gen bigint NOT NULL,\n"
"        slot integer NOT NULL,\n"
"        rotated timestamptz NOT NULL DEFAULT now());\n"
"    INSERT INTO omnibus_generation (gen, slot) VALUES (0, 0);\n"
"    CREATE TABLE omnibus_nodes (\n"
"        node text PRIMARY KEY,\n"
"        seen timestamptz NOT NULL);\n"
"    CREATE TABLE omnibus_messages (\n"
"        slot integer NOT NULL,\n"
"        node text NOT NULL,\n"
"        zone text NOT NULL,\n"
"        id text COLLATE \"C\" NOT NULL,\n"
"        topic text NOT NULL,\n"
"        priority smallint NOT NULL,\n"
"        ctype text NOT NULL,\n"
"        ikey text NOT NULL,\n"
"        payload bytea NOT NULL,\n"
"        json boolean NOT NULL,\n"
"        born bigint NOT NULL,\n"
"        PRIMARY KEY (node, id, slot)) PARTITION BY LIST (slot);\n"
"    CREATE TABLE omnibus_done (\n"
"        slot integer NOT NULL,\n"
"        node text NOT NULL,\n"
"        id text COLLATE \"C\" NOT NULL,\n"
"        PRIMARY KEY (node, id, slot)) PARTITION BY LIST (slot);\n"
"    FOR s IN 0..3 LOOP\n"
"        EXECUTE format('CREATE TABLE omnibus_messages_%s PARTITION OF '\n"
"                       'omnibus_messages FOR VALUES IN (%s)', s, s);\n"
"        EXECUTE format('CREATE TABLE omnibus_done_%s PARTITION OF '\n"
"                       'omnibus_done FOR VALUES IN (%s)', s, s);\n"
"    END LOOP;\n"
"    CREATE TABLE omnibus_dlq (\n"
"        node text NOT NULL,\n"
"        zone text NOT NULL,\n"
"        id text COLLATE \"C\" NOT NULL,\n"
"        route text NOT NULL,\n"
"        topic text NOT NULL,\n"
"        priority smallint NOT NULL,\n"
"        ctype text NOT NULL,\n"
"        ikey text NOT NULL,\n"
"        payload bytea NOT NULL,\n"
"        json boolean NOT NULL,\n"
"        attempts integer NOT NULL,\n"
"        error text NOT NULL,\n"
"        failed bigint NOT NULL,\n"
"        PRIMARY KEY (node, zone, id, route));\n"
"    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN\n"
"        PERFORM create_reference_table('omnibus_generation');\n"
"        PERFORM create_distributed_table('omnibus_nodes', 'node');\n"
"        PERFORM create_distributed_table('omnibus_messages', 'node',\n"
"                                         colocate_with => 'omnibus_nodes');\n"
"        PERFORM create_distributed_table('omnibus_done', 'node',\n"
"                                         colocate_with => 'omnibus_nodes');\n"
"        PERFORM create_distributed_table('omnibus_dlq', 'node',\n"
"                                         colocate_with => 'omnibus_nodes');\n"
"    END IF;\n"
"    INSERT INTO omnibus_schema (version) VALUES (1);\n"
"END\n"
"$omnibus$";


/*
 * The next generation's slot is truncated once every message in it is
 * done.  Done marks there for messages of younger slots (a write-behind
 * row can land after its done mark) move to the current slot first.
 */

static const char  ngx_omnibus_pg_rotate_fn[] =
"CREATE OR REPLACE FUNCTION omnibus_rotate() RETURNS bigint\n"
"LANGUAGE plpgsql AS $omnibus$\n"
"DECLARE\n"
"    g bigint;\n"
"    cur integer;\n"
"    nxt integer;\n"
"BEGIN\n"
"    IF NOT pg_try_advisory_xact_lock(" NGX_OMNIBUS_PG_LOCK " + 1) THEN\n"
"        RETURN NULL;\n"
"    END IF;\n"
"    SELECT gen, slot INTO g, cur FROM omnibus_generation WHERE one;\n"
"    nxt := ((g + 1) % 4)::integer;\n"
"    SET LOCAL lock_timeout = '1s';\n"
"    BEGIN\n"
"        EXECUTE format('LOCK TABLE omnibus_messages_%s, omnibus_done_%s '\n"
"                       'IN ACCESS EXCLUSIVE MODE', nxt, nxt);\n"
"    EXCEPTION WHEN lock_not_available THEN\n"
"        RETURN g;\n"
"    END;\n"
"    IF EXISTS (SELECT 1 FROM omnibus_messages m WHERE m.slot = nxt\n"
"               AND NOT EXISTS (SELECT 1 FROM omnibus_done d\n"
"                               WHERE d.node = m.node AND d.id = m.id))\n"
"    THEN\n"
"        RETURN g;\n"
"    END IF;\n"
"    INSERT INTO omnibus_done (slot, node, id)\n"
"        SELECT cur, d.node, d.id FROM omnibus_done d\n"
"        WHERE d.slot = nxt AND EXISTS (\n"
"            SELECT 1 FROM omnibus_messages m\n"
"            WHERE m.node = d.node AND m.id = d.id AND m.slot <> nxt)\n"
"        ON CONFLICT DO NOTHING;\n"
"    EXECUTE format('TRUNCATE omnibus_messages_%s, omnibus_done_%s',\n"
"                   nxt, nxt);\n"
"    UPDATE omnibus_generation SET gen = g + 1, slot = nxt,\n"
"        rotated = now() WHERE one;\n"
"    RETURN g + 1;\n"
"END\n"
"$omnibus$";


/* prepared on every connection, re-prepared after a reconnect */

typedef struct {
    const char                 *name;
    const char                 *sql;
    int                         n;
    Oid                         types[13];
} ngx_omnibus_pg_stmt_t;

#define T   25      /* text */
#define I2  21
#define I4  23
#define I8  20
#define B   17      /* bytea */
#define BO  16      /* boolean */

static ngx_omnibus_pg_stmt_t  ngx_omnibus_pg_stmts[] = {

    { "omnibus_message",
      "INSERT INTO omnibus_messages (slot, node, zone, id, topic, priority, "
      "ctype, ikey, payload, json, born) SELECT slot, $1, $2, $3, $4, $5, "
      "$6, $7, $8, $9, $10 FROM omnibus_generation WHERE one "
      "ON CONFLICT DO NOTHING",
      10, { T, T, T, T, I2, T, T, B, BO, I8 } },

    { "omnibus_done",
      "INSERT INTO omnibus_done (slot, node, id) SELECT slot, $1, $2 "
      "FROM omnibus_generation WHERE one ON CONFLICT DO NOTHING",
      2, { T, T } },

    { "omnibus_dead",
      "INSERT INTO omnibus_dlq (node, zone, id, route, topic, priority, "
      "ctype, ikey, payload, json, attempts, error, failed) VALUES ($1, $2, "
      "$3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
      "ON CONFLICT DO NOTHING",
      13, { T, T, T, T, T, I2, T, T, B, BO, I4, T, I8 } },

    { "omnibus_purge",
      "DELETE FROM omnibus_dlq WHERE node = $1 AND zone = $2",
      2, { T, T } },

    /* a dead letter queued again: not dead, and not done any more */
    { "omnibus_replayed",
      "WITH dead AS (DELETE FROM omnibus_dlq WHERE node = $1 AND zone = $2 "
      "AND id = $3) DELETE FROM omnibus_done WHERE node = $1 AND id = $3",
      3, { T, T, T } },

    { "omnibus_load",
      "SELECT id, topic, priority, ctype, ikey, payload, json "
      "FROM omnibus_messages m WHERE node = $1 AND zone = $2 AND id > $3 "
      "AND NOT EXISTS (SELECT 1 FROM omnibus_done d "
      "WHERE d.node = m.node AND d.id = m.id) ORDER BY id LIMIT $4",
      4, { T, T, T, I4 } },

    { "omnibus_load_dlq",
      "SELECT * FROM (SELECT id, topic, priority, ctype, ikey, payload, "
      "json, route, attempts, error, failed FROM omnibus_dlq "
      "WHERE node = $1 AND zone = $2 ORDER BY failed DESC, id LIMIT $3) "
      "newest ORDER BY failed, id",
      3, { T, T, I4 } },

    { "omnibus_beat",
      "INSERT INTO omnibus_nodes (node, seen) VALUES ($1, now()) "
      "ON CONFLICT (node) DO UPDATE SET seen = now()",
      1, { T } },

    { "omnibus_rotate",
      "SELECT omnibus_rotate()",
      0, { 0 } },

    { "omnibus_expire",
      "DELETE FROM omnibus_dlq WHERE node = $1 AND failed < $2",
      2, { T, I8 } },
};

#undef T
#undef I2
#undef I4
#undef I8
#undef B
#undef BO


/* omnibus_store ZONE URL [parameters] */

char *
ngx_omnibus_pg_store_parse(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value, ngx_uint_t n)
{
    char                    *rv;
    ssize_t                  len;
    ngx_fd_t                 fd;
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

            if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            /* read now, by the master: workers need no access to it */

            fd = ngx_open_file(file.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
            if (fd == NGX_INVALID_FILE) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                                   "omnibus_store: cannot open "
                                   "password_file \"%V\"", &file);
                return NGX_CONF_ERROR;
            }

            len = ngx_read_fd(fd, pw, sizeof(pw));
            (void) ngx_close_file(fd);

            if (len < 0 || len == sizeof(pw)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "omnibus_store: cannot read "
                                   "password_file \"%V\"", &file);
                return NGX_CONF_ERROR;
            }

            while (len && (pw[len - 1] == '\n' || pw[len - 1] == '\r')) {
                len--;
            }

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
    st->pool.up = &sh->store.up;
    st->pool.states = sh->store.connections;
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
        (void) ngx_atomic_fetch_add(&zone->sh->store.backlog,
                                    -(ngx_atomic_int_t) b->messages);
        ngx_destroy_pool(b->pool);
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
}


/* a new connection: the schema (migrated once, by one node), statements */

static ngx_int_t
ngx_omnibus_pg_store_setup(ngx_omnibus_pg_pool_t *pool, PGconn *pg)
{
    ngx_int_t                n;
    ngx_uint_t               i;
    ngx_omnibus_pg_stmt_t   *s;
    ngx_omnibus_pg_store_t  *st;

    st = pool->data;
    n = 0;

    if (st->zone->sh->store.schema < NGX_OMNIBUS_PG_SCHEMA) {
        if (!PQsendQueryParams(pg, "SELECT pg_advisory_xact_lock("
                               NGX_OMNIBUS_PG_LOCK ")",
                               0, NULL, NULL, NULL, NULL, 0)
            || !PQsendQueryParams(pg, ngx_omnibus_pg_migrate,
                                  0, NULL, NULL, NULL, NULL, 0)
            || !PQsendQueryParams(pg, ngx_omnibus_pg_rotate_fn,
                                  0, NULL, NULL, NULL, NULL, 0))
        {
            return NGX_ERROR;
        }

        n += 3;
    }

    for (i = 0; i < sizeof(ngx_omnibus_pg_stmts)
                    / sizeof(ngx_omnibus_pg_stmt_t); i++)
    {
        s = &ngx_omnibus_pg_stmts[i];

        if (!PQsendPrepare(pg, s->name, s->sql, s->n, s->types)) {
            return NGX_ERROR;
        }

        n++;
    }

    return n;
}


/* a connection is free, or the database came back: what waits may go */

static void
ngx_omnibus_pg_store_changed(ngx_omnibus_pg_pool_t *pool)
{
    ngx_omnibus_pg_store_t  *st;

    st = pool->data;

    if (pool->connected) {
        st->zone->sh->store.schema = NGX_OMNIBUS_PG_SCHEMA;
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
        return NGX_ERROR;
    }

    row->topic.data = p;
    row->topic.len = offer->topic.len;
    p = ngx_cpymem(p, offer->topic.data, offer->topic.len);
    row->ctype.data = p;
    row->ctype.len = offer->ctype.len;
    p = ngx_cpymem(p, offer->ctype.data, offer->ctype.len);
    row->key.data = p;
    row->key.len = offer->key.len;
    p = ngx_cpymem(p, offer->key.data, offer->key.len);
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
    (void) ngx_atomic_fetch_add(&zone->sh->store.backlog, 1);

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
    (void) ngx_atomic_fetch_add(&zone->sh->store.backlog, 1);
}


/* a row of the batch being filled; a full batch is sent after this turn */

static ngx_omnibus_pg_row_t *
ngx_omnibus_pg_store_row(ngx_omnibus_pg_store_t *st, ngx_uint_t kind)
{
    ngx_pool_t              *pool;
    ngx_omnibus_pg_row_t    *row;
    ngx_omnibus_pg_batch_t  *b;

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

    if (b->rows.nelts >= st->batch) {
        if (!st->now_ev.posted) {
            ngx_post_event(&st->now_ev, &ngx_posted_events);
        }

    } else if (!st->flush_ev.timer_set) {
        ngx_add_timer(&st->flush_ev, st->flush);
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


static void
ngx_omnibus_pg_store_flush_handler(ngx_event_t *ev)
{
    ngx_omnibus_pg_store_flush(ev->data);
}


/*
 * Send the batch being filled, and batches to write again, while the
 * database takes them.  Group commit: while every connection is busy,
 * rows gather in the next batch.
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
            if (st->iface.sync && b == st->filling) {
                /* producers waiting for a commit get their answer now */
                st->filling = NULL;
                ngx_omnibus_pg_store_release(b, 0);
                ngx_omnibus_pg_store_again(st, b);
                continue;
            }

            break;                           /* the tick tries again */
        }

        if (q) {
            ngx_queue_remove(q);

        } else {
            st->filling = NULL;
        }

        b->started = ngx_omnibus_now_us();
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

    if (st->filling || !ngx_queue_empty(&st->again)) {
        st->flush_ev.cancelable = (ngx_exiting && st->committing == 0
                                   && !ngx_omnibus_pg_available(pool));

        ngx_add_timer(&st->flush_ev,
                      ngx_exiting ? 100
                      : ngx_omnibus_pg_available(pool) ? st->flush
                      : NGX_OMNIBUS_PG_TICK);
    }
}


static ngx_int_t
ngx_omnibus_pg_store_send(ngx_omnibus_pg_op_t *op, PGconn *pg)
{
    int                      lens[13], formats[13], np;
    u_char                  *p;
    ngx_int_t                n;
    ngx_uint_t               i;
    const char              *v[13], *stmt;
    ngx_omnibus_pg_row_t    *row;
    ngx_omnibus_pg_batch_t  *b;
    ngx_omnibus_pg_store_t  *st;
    u_char                   prio[NGX_INT_T_LEN + 1], num[NGX_INT_T_LEN + 1];
    u_char                   tm[NGX_INT64_LEN + 1];
    u_char                   id[NGX_OMNIBUS_ID_LEN + 1];

    b = op->data;
    st = b->st;
    row = b->rows.elts;
    n = 0;

    ngx_memzero(formats, sizeof(formats));
    ngx_memzero(lens, sizeof(lens));

    id[NGX_OMNIBUS_ID_LEN] = '\0';

    for (i = 0; i < b->rows.nelts; i++, row++) {

        /* text parameters end with NUL; bytea goes binary */

        ngx_memcpy(id, row->id, NGX_OMNIBUS_ID_LEN);

        v[0] = st->node_z;
        v[1] = st->zone_z;
        v[2] = (char *) id;

        switch (row->kind) {

        case NGX_OMNIBUS_PG_MESSAGE:
        case NGX_OMNIBUS_PG_DEAD:
            p = ngx_pnalloc(b->pool, row->topic.len + row->ctype.len
                                     + row->key.len + row->route.len
                                     + row->error.len + 5);
            if (p == NULL) {
                return NGX_ERROR;
            }

            v[3] = (char *) p;
            p = ngx_cpymem(p, row->route.data, row->route.len);
            *p++ = '\0';
            v[4] = (char *) p;
            p = ngx_cpymem(p, row->topic.data, row->topic.len);
            *p++ = '\0';
            (void) ngx_sprintf(prio, "%ui%Z", row->priority);
            v[5] = (char *) prio;
            v[6] = (char *) p;
            p = ngx_cpymem(p, row->ctype.data, row->ctype.len);
            *p++ = '\0';
            v[7] = (char *) p;
            p = ngx_cpymem(p, row->key.data, row->key.len);
            *p++ = '\0';
            v[8] = (char *) row->payload.data;
            lens[8] = row->payload.len;
            formats[8] = 1;
            v[9] = row->json ? "t" : "f";
            (void) ngx_sprintf(num, "%ui%Z", row->attempts);
            v[10] = (char *) num;
            v[11] = (char *) p;
            p = ngx_cpymem(p, row->error.data, row->error.len);
            *p = '\0';
            (void) ngx_sprintf(tm, "%uL%Z", row->time);
            v[12] = (char *) tm;

            if (row->kind == NGX_OMNIBUS_PG_DEAD) {
                stmt = "omnibus_dead";
                np = 13;
                break;
            }

            /* node zone id topic priority ctype ikey payload json born */

            v[3] = v[4];
            v[4] = v[5];
            v[5] = v[6];
            v[6] = v[7];
            v[7] = v[8];
            lens[7] = lens[8];
            formats[7] = 1;
            v[8] = v[9];
            lens[8] = 0;
            formats[8] = 0;
            v[9] = v[12];
            stmt = "omnibus_message";
            np = 10;
            break;

        case NGX_OMNIBUS_PG_DONE:
            v[1] = (char *) id;
            stmt = "omnibus_done";
            np = 2;
            break;

        case NGX_OMNIBUS_PG_PURGE:
            stmt = "omnibus_purge";
            np = 2;
            break;

        case NGX_OMNIBUS_PG_REPLAYED:
            stmt = "omnibus_replayed";
            np = 3;
            break;

        default:
            continue;
        }

        if (ngx_omnibus_pg_send(pg, stmt, np, v, lens, formats) != NGX_OK) {
            return NGX_ERROR;
        }

        formats[7] = 0;
        formats[8] = 0;
        lens[7] = 0;
        lens[8] = 0;
        n++;
    }

    return n;
}


static void
ngx_omnibus_pg_store_result(ngx_omnibus_pg_op_t *op, PGresult *res)
{
    ExecStatusType  st;

    st = PQresultStatus(res);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        ngx_omnibus_pg_failed(op, res, NGX_OMNIBUS_PG_QUERY);
    }
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
    (void) ngx_atomic_fetch_add(&sh->store.backlog,
                                -(ngx_atomic_int_t) b->messages);

    ngx_destroy_pool(b->pool);
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

            if (!ok) {
                row[i].kind = NGX_OMNIBUS_PG_SKIP;
                b->messages--;
                b->st->backlog--;
                (void) ngx_atomic_fetch_add(&sh->store.backlog, -1);
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

    ngx_destroy_pool(b->pool);
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
        ngx_omnibus_pg_store_load(st);
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

    if (ngx_omnibus_pg_run(&st->pool, &st->tick_op) == NGX_OK) {
        st->ticking = 1;
    }
}


static ngx_int_t
ngx_omnibus_pg_store_tick_send(ngx_omnibus_pg_op_t *op, PGconn *pg)
{
    ngx_int_t                n;
    const char              *v[2];
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
        v[1] = (char *) tm;

        if (ngx_omnibus_pg_send(pg, "omnibus_rotate", 0, NULL, NULL, NULL)
            != NGX_OK
            || ngx_omnibus_pg_send(pg, "omnibus_expire", 2, v, NULL, NULL)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        n += 2;
    }

    return n;
}


static void
ngx_omnibus_pg_store_tick_result(ngx_omnibus_pg_op_t *op, PGresult *res)
{
    ngx_int_t                gen;
    ngx_omnibus_pg_store_t  *st;

    st = op->data;

    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
            gen = ngx_atoi((u_char *) PQgetvalue(res, 0, 0),
                           PQgetlength(res, 0, 0));
            if (gen != NGX_ERROR) {
                st->zone->sh->store.generation = gen;
            }
        }

        return;
    }

    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        ngx_omnibus_pg_failed(op, res, NGX_OMNIBUS_PG_QUERY);
    }
}


static void
ngx_omnibus_pg_store_tick_done(ngx_omnibus_pg_op_t *op, ngx_int_t rc)
{
    ngx_omnibus_pg_store_t  *st;

    st = op->data;
    st->ticking = 0;

    if (rc != NGX_OK && op->reason == NGX_OMNIBUS_PG_QUERY) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "omnibus store \"%V\": heartbeat or rotation failed: "
                      "%s", &st->zone->name, op->error);
    }
}


/*
 * Loading a new zone: one worker takes it (or takes it over from a
 * worker that died), then pages through the unfinished rows by id, and
 * the newest dead letters last.
 */

static void
ngx_omnibus_pg_store_load(ngx_omnibus_pg_store_t *st)
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

    if (sh->state != NGX_OMNIBUS_STORE_LOADING || sh->loader != ngx_pid) {
        return;
    }

    st->load_op.send = ngx_omnibus_pg_store_load_send;
    st->load_op.result = ngx_omnibus_pg_store_load_result;
    st->load_op.done = ngx_omnibus_pg_store_load_done;
    st->load_op.data = st;
    st->load_rows = 0;
    st->load_full = 0;

    if (ngx_omnibus_pg_run(&st->pool, &st->load_op) == NGX_OK) {
        st->loading = 1;
    }
}


static ngx_int_t
ngx_omnibus_pg_store_load_send(ngx_omnibus_pg_op_t *op, PGconn *pg)
{
    const char              *v[4];
    ngx_omnibus_store_sh_t  *sh;
    ngx_omnibus_pg_store_t  *st;
    u_char                   after[NGX_OMNIBUS_ID_LEN + 1];
    u_char                   limit[NGX_INT_T_LEN + 1];

    st = op->data;
    sh = &st->zone->sh->store;

    v[0] = st->node_z;
    v[1] = st->zone_z;

    if (st->load_dlq) {
        (void) ngx_sprintf(limit, "%ui%Z", st->zone->dlq_size);
        v[2] = (char *) limit;

        return ngx_omnibus_pg_send(pg, "omnibus_load_dlq", 3, v, NULL, NULL)
               == NGX_OK ? 1 : NGX_ERROR;
    }

    (void) ngx_cpystrn(after, sh->loaded, sh->loaded_len + 1);
    (void) ngx_sprintf(limit, "%ui%Z", (ngx_uint_t) NGX_OMNIBUS_PG_LOAD_ROWS);

    v[2] = (char *) after;
    v[3] = (char *) limit;

    return ngx_omnibus_pg_send(pg, "omnibus_load", 4, v, NULL, NULL)
           == NGX_OK ? 1 : NGX_ERROR;
}


/* rows back into their shards, past backpressure: they were accepted */

static void
ngx_omnibus_pg_store_load_result(ngx_omnibus_pg_op_t *op, PGresult *res)
{
    int                        i, n;
    size_t                     len;
    u_char                    *bytes;
    ngx_str_t                  route, error;
    ngx_omnibus_offer_t        offer;
    ngx_omnibus_store_sh_t    *sh;
    ngx_omnibus_pg_store_t    *st;
    ngx_omnibus_enqueue_rc_e   rc;
    u_char                     id[NGX_OMNIBUS_ID_LEN];

    st = op->data;
    sh = &st->zone->sh->store;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        ngx_omnibus_pg_failed(op, res, NGX_OMNIBUS_PG_QUERY);
        return;
    }

    n = PQntuples(res);
    st->load_rows = n;

    for (i = 0; i < n; i++) {
        if (PQgetlength(res, i, 0) != NGX_OMNIBUS_ID_LEN) {
            continue;
        }

        ngx_memzero(&offer, sizeof(ngx_omnibus_offer_t));

        offer.id = (u_char *) PQgetvalue(res, i, 0);
        offer.topic.data = (u_char *) PQgetvalue(res, i, 1);
        offer.topic.len = PQgetlength(res, i, 1);
        offer.priority = ngx_atoi((u_char *) PQgetvalue(res, i, 2),
                                  PQgetlength(res, i, 2));
        offer.ctype.data = (u_char *) PQgetvalue(res, i, 3);
        offer.ctype.len = PQgetlength(res, i, 3);
        offer.key.data = (u_char *) PQgetvalue(res, i, 4);
        offer.key.len = PQgetlength(res, i, 4);
        offer.json = (PQgetvalue(res, i, 6)[0] == 't');
        offer.force = 1;

        if (offer.priority > 9 || offer.topic.len == 0
            || offer.topic.len > NGX_OMNIBUS_TOPIC_MAX)
        {
            continue;
        }

        /* bytea comes as text: \x and hex digits */

        bytes = PQunescapeBytea((u_char *) PQgetvalue(res, i, 5), &len);
        if (bytes == NULL) {
            ngx_omnibus_pg_failed(op, NULL, NGX_OMNIBUS_PG_QUERY);
            return;
        }

        offer.payload.data = bytes;
        offer.payload.len = len;

        if (st->load_dlq) {
            route.data = (u_char *) PQgetvalue(res, i, 7);
            route.len = PQgetlength(res, i, 7);
            error.data = (u_char *) PQgetvalue(res, i, 9);
            error.len = PQgetlength(res, i, 9);

            offer.shard = 0;

            ngx_omnibus_dlq_restore(st->zone, &offer, &route,
                         ngx_atoi((u_char *) PQgetvalue(res, i, 8),
                                  PQgetlength(res, i, 8)),
                         &error,
                         (uint64_t) ngx_atoi((u_char *) PQgetvalue(res, i, 10),
                                             PQgetlength(res, i, 10)));
            PQfreemem(bytes);
            continue;
        }

        ngx_omnibus_dedup_identity(&offer, NGX_OMNIBUS_DEDUP_KEY);
        offer.shard = ngx_omnibus_ring_shard(st->zone, &offer.topic);

        rc = ngx_omnibus_enqueue(st->zone, &offer, id, ngx_cycle->log);

        PQfreemem(bytes);

        if (rc == NGX_OMNIBUS_ZONE_FULL || rc == NGX_OMNIBUS_RETIRED) {
            /* no room now: the rest is loaded again from this id */
            st->load_full = 1;
            return;
        }

        ngx_memcpy(sh->loaded, offer.id, NGX_OMNIBUS_ID_LEN);
        sh->loaded_len = NGX_OMNIBUS_ID_LEN;

        if (rc == NGX_OMNIBUS_QUEUED) {
            (void) ngx_atomic_fetch_add(&sh->recovered, 1);
        }
    }
}


static void
ngx_omnibus_pg_store_load_done(ngx_omnibus_pg_op_t *op, ngx_int_t rc)
{
    ngx_omnibus_store_sh_t  *sh;
    ngx_omnibus_pg_store_t  *st;

    st = op->data;
    sh = &st->zone->sh->store;

    st->loading = 0;

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "omnibus store \"%V\": loading stored messages "
                      "failed, retried: %s", &st->zone->name, op->error);
        return;
    }

    if (st->load_full) {
        return;                              /* the tick goes on */
    }

    if (!st->load_dlq && st->load_rows == NGX_OMNIBUS_PG_LOAD_ROWS) {
        ngx_omnibus_pg_store_load(st);        /* the next page, now */
        return;
    }

    if (!st->load_dlq) {
        st->load_dlq = 1;
        ngx_omnibus_pg_store_load(st);
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "omnibus store \"%V\": %uA stored message(s) loaded back, "
                  "the zone is ready", &st->zone->name, sh->recovered);

    sh->state = NGX_OMNIBUS_STORE_READY;
    st->load_dlq = 0;
}
