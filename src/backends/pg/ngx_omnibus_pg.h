
/*
 * libpq on the NGINX event loop: a pool of connections per worker, each
 * connected without blocking, its statements prepared once per
 * connection, and work sent as operations: a pipeline of statements that
 * ends with a sync, so each operation is one transaction.  Connections
 * come back by themselves with backoff, behind the store's breaker.
 */


#ifndef _NGX_OMNIBUS_PG_H_INCLUDED_
#define _NGX_OMNIBUS_PG_H_INCLUDED_


#include <ngx_omnibus_conn.h>
#include <libpq-fe.h>


/* why an operation failed, as counted in metrics */
typedef enum {
    NGX_OMNIBUS_PG_CONNECT = 0,
    NGX_OMNIBUS_PG_QUERY,
    NGX_OMNIBUS_PG_TIMEOUT,
    NGX_OMNIBUS_PG_BACKLOG
} ngx_omnibus_pg_reason_e;


/* connections by state, as counted in metrics */
typedef enum {
    NGX_OMNIBUS_PG_IDLE = 0,
    NGX_OMNIBUS_PG_BUSY,
    NGX_OMNIBUS_PG_CONNECTING
} ngx_omnibus_pg_state_e;


typedef struct ngx_omnibus_pg_op_s    ngx_omnibus_pg_op_t;
typedef struct ngx_omnibus_pg_pool_s  ngx_omnibus_pg_pool_t;

struct ngx_omnibus_pg_op_s {
    ngx_queue_t                 queue;       /* waiting for a connection */

    /* pipeline the statements: how many, or -1 (the pool adds the sync) */
    ngx_int_t                 (*send)(ngx_omnibus_pg_op_t *op, PGconn *pg);

    /* each statement's result in order, errors included */
    void                      (*result)(ngx_omnibus_pg_op_t *op,
                                        PGresult *res);

    /* NGX_OK: every statement succeeded and the transaction committed */
    void                      (*done)(ngx_omnibus_pg_op_t *op, ngx_int_t rc);

    void                       *data;
    ngx_uint_t                  reason;      /* of a failure */
    ngx_msec_t                  timeout;     /* 0: the pool's */
    u_char                      error[160];
};


/* connection settings, from omnibus_store's URL and parameters */
typedef struct {
    ngx_array_t                 keywords;    /* char *, NULL-ended */
    ngx_array_t                 values;
    ngx_str_t                   target;      /* user@host:port/db, logs */
    ngx_uint_t                  size;        /* connections kept */
    ngx_uint_t                  overflow;    /* opened beyond, then closed */
    ngx_msec_t                  recycle;     /* a connection's life */
    ngx_msec_t                  timeout;     /* connect and operation */
} ngx_omnibus_pg_conf_t;


struct ngx_omnibus_pg_pool_s {
    ngx_omnibus_pg_conf_t      *conf;
    ngx_queue_t                 idle;        /* ngx_omnibus_pg_conn_t */
    ngx_queue_t                 all;
    ngx_queue_t                 waiting;     /* ngx_omnibus_pg_op_t */
    ngx_event_t                 waited;      /* the oldest waits too long */
    ngx_uint_t                  nconns;
    ngx_uint_t                  opening;     /* connecting or set up */
    ngx_msec_t                  extra_after; /* no extra connection before */
    ngx_uint_t                  connected;   /* ever, since the last loss */
    ngx_uint_t                  down;        /* the last connect failed */
    ngx_uint_t                  closing;     /* the worker exits */
    ngx_omnibus_breaker_t       breaker;
    ngx_omnibus_reconnect_t     reconnect;
    ngx_log_t                  *log;

    /* shared with the other workers, for metrics and status */
    ngx_atomic_t               *up;
    ngx_atomic_t               *states;      /* by ngx_omnibus_pg_state_e */
    ngx_atomic_t               *errors;      /* by ngx_omnibus_pg_reason_e */

    /* a new connection's setup: statements sent, or -1 */
    ngx_int_t                 (*setup)(ngx_omnibus_pg_pool_t *pool,
                                       PGconn *pg);
    /* a connection became free, or the pool went down or up */
    void                      (*changed)(ngx_omnibus_pg_pool_t *pool);
    void                       *data;
};


char *ngx_omnibus_pg_conf_url(ngx_conf_t *cf, ngx_omnibus_pg_conf_t *conf,
    ngx_str_t *url, ngx_str_t *name);
char *ngx_omnibus_pg_conf_set(ngx_conf_t *cf, ngx_omnibus_pg_conf_t *conf,
    const char *keyword, u_char *value, size_t len);
ngx_int_t ngx_omnibus_pg_init(ngx_omnibus_pg_pool_t *pool, ngx_log_t *log);
ngx_int_t ngx_omnibus_pg_run(ngx_omnibus_pg_pool_t *pool,
    ngx_omnibus_pg_op_t *op);
ngx_uint_t ngx_omnibus_pg_available(ngx_omnibus_pg_pool_t *pool);
void ngx_omnibus_pg_close(ngx_omnibus_pg_pool_t *pool);
ngx_int_t ngx_omnibus_pg_send(PGconn *pg, const char *stmt, int n,
    const char *const *values, const int *lengths, const int *formats);
ngx_int_t ngx_omnibus_pg_check(ngx_omnibus_pg_op_t *op, PGresult *res,
    ngx_uint_t reason);
void ngx_omnibus_pg_failed(ngx_omnibus_pg_op_t *op, PGresult *res,
    ngx_uint_t reason);


#endif /* _NGX_OMNIBUS_PG_H_INCLUDED_ */
