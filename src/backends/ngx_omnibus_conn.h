
/*
 * The external-connection layer every backend shares: a socket on the
 * NGINX event loop, opened by us (webhooks) or by a client library
 * (hiredis, libpq, librdkafka's wake-up fd); a per-worker pool of idle
 * connections that notices when the other end closes them; and
 * reconnecting with capped exponential backoff and jitter behind a
 * circuit breaker.  Everything is nonblocking and every timer cancelable,
 * so that a quitting worker is never held by a backend at rest.
 */


#ifndef _NGX_OMNIBUS_CONN_H_INCLUDED_
#define _NGX_OMNIBUS_CONN_H_INCLUDED_


#include <ngx_omnibus_delivery.h>
#include <ngx_event_connect.h>


/* the idle connections one worker keeps to one backend */
typedef struct {
    ngx_queue_t                 idle;        /* ngx_connection_t, by queue */
    ngx_uint_t                  nidle;
    ngx_uint_t                  max_idle;
    ngx_msec_t                  keepalive;   /* idle for this long: close */
} ngx_omnibus_conn_pool_t;


/* a connection that comes back by itself when lost */
typedef struct {
    ngx_event_t                 timer;       /* the next attempt */
    ngx_msec_t                  base;        /* first delay */
    ngx_msec_t                  cap;         /* longest delay */
    ngx_uint_t                  failures;    /* in a row */
    ngx_omnibus_breaker_t      *breaker;     /* NULL: none */
} ngx_omnibus_reconnect_t;


void ngx_omnibus_conn_pool_init(ngx_omnibus_conn_pool_t *pool,
    ngx_uint_t max_idle, ngx_msec_t keepalive);
ngx_int_t ngx_omnibus_conn_open(struct sockaddr *sockaddr, socklen_t socklen,
    ngx_str_t *name, ngx_log_t *log, ngx_connection_t **cp);
ngx_err_t ngx_omnibus_conn_error(ngx_connection_t *c);
ngx_connection_t *ngx_omnibus_conn_pool_get(ngx_omnibus_conn_pool_t *pool,
    struct sockaddr *sockaddr);
void ngx_omnibus_conn_pool_put(ngx_omnibus_conn_pool_t *pool,
    ngx_connection_t *c);
void ngx_omnibus_conn_pool_close(ngx_omnibus_conn_pool_t *pool);

/* what becomes of a wrapped socket's fd when it leaves the event loop */
typedef enum {
    NGX_OMNIBUS_CONN_KEEP = 0,               /* its library closes it later */
    NGX_OMNIBUS_CONN_CLOSE,                  /* closed here */
    NGX_OMNIBUS_CONN_CLOSED                  /* its library closed it */
} ngx_omnibus_conn_fd_e;


ngx_connection_t *ngx_omnibus_conn_wrap(ngx_socket_t fd, ngx_log_t *log);
void ngx_omnibus_conn_unwrap(ngx_connection_t *c, ngx_uint_t fd);

void ngx_omnibus_reconnect_init(ngx_omnibus_reconnect_t *rc, ngx_msec_t base,
    ngx_msec_t cap, ngx_omnibus_breaker_t *breaker,
    ngx_event_handler_pt handler, void *data, ngx_log_t *log);
ngx_msec_t ngx_omnibus_reconnect_later(ngx_omnibus_reconnect_t *rc);
void ngx_omnibus_reconnect_done(ngx_omnibus_reconnect_t *rc);

char *ngx_omnibus_conf_secret(ngx_conf_t *cf, const char *directive,
    ngx_str_t *file, u_char *buf, size_t size, size_t *len);


#endif /* _NGX_OMNIBUS_CONN_H_INCLUDED_ */
