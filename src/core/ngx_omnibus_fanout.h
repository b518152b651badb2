
/*
 * Which processes have subscribers, what their fan-out has fed them so
 * far, and waking them when a dispatch retained news.  The subscribers
 * themselves (their protocols and output) are the HTTP layer's: it joins
 * and leaves here, and sets zone->fanout's handler.
 */


#ifndef _NGX_OMNIBUS_FANOUT_H_INCLUDED_
#define _NGX_OMNIBUS_FANOUT_H_INCLUDED_


/* a round shorter than this (us) lets the next one run at once */
#define NGX_OMNIBUS_FANOUT_REST_MIN   500
/* the longest wait (us) before the next round */
#define NGX_OMNIBUS_FANOUT_REST_MAX   50000
/* a fan-out this many messages behind does not wait */
#define NGX_OMNIBUS_FANOUT_BEHIND     1024


ngx_int_t ngx_omnibus_fanout_init_process(ngx_omnibus_zone_t *zone,
    ngx_cycle_t *cycle);
void ngx_omnibus_fanout_join(ngx_omnibus_zone_t *zone, ngx_queue_t *link);
void ngx_omnibus_fanout_leave(ngx_omnibus_zone_t *zone, ngx_queue_t *link);
void ngx_omnibus_fanout_reclaim(ngx_omnibus_zone_t *zone);
ngx_uint_t ngx_omnibus_fanout_count(ngx_omnibus_zone_t *zone);
void ngx_omnibus_fanout_wake(ngx_omnibus_zone_t *zone);
void ngx_omnibus_fanout_feed(ngx_omnibus_zone_t *zone);
void ngx_omnibus_fanout_done(ngx_omnibus_zone_t *zone, uint64_t start,
    ngx_uint_t n);
ngx_int_t ngx_omnibus_fanout_remote(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *o, u_char *id, uint64_t born);


#endif /* _NGX_OMNIBUS_FANOUT_H_INCLUDED_ */
