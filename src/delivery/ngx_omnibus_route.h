
/*
 * Routes: which topics go to which sink, with the retry policy and the
 * breaker every sink shares.
 */


#ifndef _NGX_OMNIBUS_ROUTE_H_INCLUDED_
#define _NGX_OMNIBUS_ROUTE_H_INCLUDED_


struct ngx_omnibus_route_s {
    ngx_str_t                   name;        /* metric label */
    ngx_str_t                   pattern;
    ngx_str_t                   url;
    ngx_omnibus_zone_t         *zone;
    ngx_omnibus_slot_t          slot;
    ngx_omnibus_sink_t         *sink;
    void                       *conf;        /* the sink's */

    ngx_msec_t                  timeout;     /* per attempt */
    ngx_uint_t                  retries;
    ngx_msec_t                  backoff;
    ngx_msec_t                  max_backoff;
    ngx_uint_t                  concurrency; /* 0: the shard's */
    ngx_omnibus_breaker_t       breaker;

    /* worker-local */
    ngx_uint_t                 *active;      /* per shard */
    ngx_queue_t                *waiting;     /* per shard, FIFO */
    ngx_queue_t                 held;        /* by the open breaker */
    ngx_event_t                 breaker_timer;
    ngx_log_t                  *log;
};


#define ngx_omnibus_route_sh(route)                                         \
    (&(route)->zone->sh->routes[(route)->slot.index])


char *ngx_omnibus_route_parse(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value, ngx_uint_t nvalue, ngx_omnibus_sink_t **sinks);
uint64_t ngx_omnibus_route_match(ngx_omnibus_zone_t *zone,
    ngx_omnibus_msg_t *msg);
ngx_int_t ngx_omnibus_route_init_process(ngx_omnibus_zone_t *zone,
    ngx_cycle_t *cycle);
void ngx_omnibus_route_exit_process(ngx_omnibus_zone_t *zone);


#endif /* _NGX_OMNIBUS_ROUTE_H_INCLUDED_ */
