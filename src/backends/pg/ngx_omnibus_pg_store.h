
/*
 * omnibus_store: the zone's messages kept in PostgreSQL until they are
 * done with every route, its dead letters too, and loaded back when the
 * zone starts empty.  The types are shared by the store's files: the
 * write path (ngx_omnibus_pg_store.c), the schema and statements
 * (ngx_omnibus_pg_schema.c), and loading rows (ngx_omnibus_pg_load.c).
 */


#ifndef _NGX_OMNIBUS_PG_STORE_H_INCLUDED_
#define _NGX_OMNIBUS_PG_STORE_H_INCLUDED_


#include <ngx_omnibus_pg.h>


#define NGX_OMNIBUS_PG_SCHEMA        1
#define NGX_OMNIBUS_PG_LOCK          "7236420181"   /* advisory lock key */


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
    ngx_msec_t                  born;        /* its first row */
    ngx_uint_t                  statements;  /* sent, in this attempt */
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
    ngx_omnibus_store_proc_t   *proc;        /* this worker's counters */
    ngx_omnibus_store_proc_t    own;         /* when no slot was free */
    ngx_str_t                   node;
    char                       *node_z;      /* NUL-ended, for libpq */
    char                       *zone_z;
    ngx_omnibus_pg_batch_t     *filling;
    ngx_queue_t                 again;       /* failed, async: write again */
    ngx_uint_t                  committing;  /* batches sent */
    ngx_uint_t                  backlog;     /* message rows not committed */
    ngx_uint_t                  rows;        /* of every kind, in batches */
    ngx_msec_t                  quit;        /* when the quit was seen */
    ngx_msec_t                  beating;     /* heartbeats since, or 0 */
    ngx_event_t                 flush_ev;    /* flush interval */
    ngx_event_t                 now_ev;      /* posted: a full batch */
    ngx_event_t                 tick;
    ngx_msec_t                  rotated;
    time_t                      logged;
    ngx_uint_t                  ticking;     /* heartbeat/rotation is out */
    ngx_omnibus_pg_op_t         tick_op;

    /* rows back into the zone: a new zone's, or a silent node's */
    ngx_omnibus_pg_op_t         load_op;
    ngx_uint_t                  loading;     /* a query is out */
    ngx_uint_t                  load_step;   /* ngx_omnibus_pg_load_e */
    ngx_uint_t                  load_rows;
    ngx_uint_t                  load_full;   /* the zone had no room */
    ngx_msec_t                  adopted;     /* the last look */
};


char *ngx_omnibus_pg_store_parse(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value, ngx_uint_t n);
ngx_int_t ngx_omnibus_pg_store_init_process(ngx_omnibus_zone_t *zone,
    ngx_str_t *node, ngx_cycle_t *cycle);
void ngx_omnibus_pg_store_exit_process(ngx_omnibus_zone_t *zone);

ngx_int_t ngx_omnibus_pg_schema_send(PGconn *pg, ngx_uint_t migrate);

void ngx_omnibus_pg_load(ngx_omnibus_pg_store_t *st);
void ngx_omnibus_pg_adopt(ngx_omnibus_pg_store_t *st);


#endif /* _NGX_OMNIBUS_PG_STORE_H_INCLUDED_ */
