
/*
 * Cross-worker wake-up through one eventfd per worker slot.
 */


#ifndef _NGX_OMNIBUS_NOTIFY_H_INCLUDED_
#define _NGX_OMNIBUS_NOTIFY_H_INCLUDED_


/* what a woken worker runs: the dispatcher, given at init */
typedef void (*ngx_omnibus_wake_pt)(void);


ngx_int_t ngx_omnibus_notify_init_module(ngx_cycle_t *cycle,
    ngx_omnibus_main_conf_t *omcf);
ngx_int_t ngx_omnibus_notify_init_process(ngx_cycle_t *cycle,
    ngx_omnibus_main_conf_t *omcf, ngx_omnibus_wake_pt woken);
void ngx_omnibus_notify_exit_process(void);
void ngx_omnibus_notify(ngx_omnibus_zone_t *zone, ngx_uint_t shard);
void ngx_omnibus_notify_worker(ngx_omnibus_zone_t *zone, ngx_uint_t worker);
void ngx_omnibus_notify_all(ngx_omnibus_zone_t *zone);
void ngx_omnibus_notify_taken(ngx_omnibus_zone_t *zone);


#endif /* _NGX_OMNIBUS_NOTIFY_H_INCLUDED_ */
