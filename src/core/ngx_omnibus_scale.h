
/*
 * Elastic shards: ring changes under a fence, and the autoscaler.
 */


#ifndef _NGX_OMNIBUS_SCALE_H_INCLUDED_
#define _NGX_OMNIBUS_SCALE_H_INCLUDED_


char *ngx_omnibus_scale_parse(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value, ngx_uint_t n);
ngx_int_t ngx_omnibus_scale_locked(ngx_omnibus_zone_t *zone, ngx_int_t delta,
    ngx_log_t *log);
ngx_uint_t ngx_omnibus_fence_check_locked(ngx_omnibus_zone_t *zone,
    ngx_log_t *log);
uint64_t ngx_omnibus_fence_limit(ngx_omnibus_zone_t *zone, ngx_uint_t s);
ngx_int_t ngx_omnibus_scale_init_process(ngx_omnibus_zone_t *zone,
    ngx_cycle_t *cycle);


#endif /* _NGX_OMNIBUS_SCALE_H_INCLUDED_ */
