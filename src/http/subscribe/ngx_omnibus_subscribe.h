
/*
 * Subscribers: one per SSE stream or long-poll on this worker.  The
 * common part (ngx_omnibus_subscriber.c) registers them with the zone's
 * fan-out and writes their output; ngx_omnibus_sse.c and
 * ngx_omnibus_longpoll.c speak the two protocols; ngx_omnibus_subscribe.c
 * takes the request and feeds them.
 */


#ifndef _NGX_OMNIBUS_SUBSCRIBE_H_INCLUDED_
#define _NGX_OMNIBUS_SUBSCRIBE_H_INCLUDED_


#include <ngx_omnibus_http.h>


/*
 * The SSE events of a fan-out round, rendered once for all the streams
 * of the worker: their output buffers point into it, each holding a
 * reference, until the bytes are sent.
 */
typedef struct {
    ngx_uint_t                  refs;
    ngx_uint_t                  n;
    u_char                     *data;
    size_t                      off[1];      /* n + 1: event i's bounds */
} ngx_omnibus_sub_batch_t;


typedef struct {
    ngx_queue_t                 queue;       /* zone->subscribers */
    ngx_http_request_t         *r;
    ngx_omnibus_zone_t         *zone;
    ngx_str_t                   pattern;
    ngx_event_t                 timer;       /* heartbeat or poll timeout */
    ngx_msec_t                  heartbeat;
    ngx_chain_t                *out;
    ngx_chain_t                *free;
    ngx_chain_t                *busy;
    ngx_chain_t               **last;
    size_t                      max_buffer;
    unsigned                    sse:1;
    unsigned                    live:1;
} ngx_omnibus_sub_t;


/* common */
ngx_int_t ngx_omnibus_sub_register(ngx_omnibus_sub_t *sub);
void ngx_omnibus_sub_unregister(ngx_omnibus_sub_t *sub);
ngx_int_t ngx_omnibus_sub_append(ngx_omnibus_sub_t *sub, u_char *p,
    size_t len);
ngx_int_t ngx_omnibus_sub_share(ngx_omnibus_sub_t *sub,
    ngx_omnibus_sub_batch_t *batch, ngx_uint_t i);
void ngx_omnibus_sub_release(ngx_omnibus_sub_batch_t *batch);
ngx_int_t ngx_omnibus_sub_flush(ngx_omnibus_sub_t *sub);
void ngx_omnibus_sub_finalize(ngx_http_request_t *r, ngx_int_t rc);
void ngx_omnibus_sub_write_handler(ngx_http_request_t *r);

/* SSE */
ngx_int_t ngx_omnibus_sse_start(ngx_omnibus_sub_t *sub, ngx_array_t *copies);
ngx_omnibus_sub_batch_t *ngx_omnibus_sse_render(ngx_omnibus_copy_t *c,
    ngx_uint_t n, ngx_log_t *log);
void ngx_omnibus_sse_feed(ngx_omnibus_sub_t *sub,
    ngx_omnibus_sub_batch_t *batch, u_char *match);

/* long-poll */
ngx_int_t ngx_omnibus_longpoll_start(ngx_omnibus_sub_t *sub,
    ngx_array_t *copies, ngx_msec_t timeout);
ngx_int_t ngx_omnibus_longpoll_reply(ngx_omnibus_sub_t *sub,
    ngx_omnibus_copy_t *c, ngx_uint_t n);


#endif /* _NGX_OMNIBUS_SUBSCRIBE_H_INCLUDED_ */
