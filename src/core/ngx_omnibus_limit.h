
/*
 * Rate limits: at most N admissions per key in a sliding window.
 */


#ifndef _NGX_OMNIBUS_LIMIT_H_INCLUDED_
#define _NGX_OMNIBUS_LIMIT_H_INCLUDED_


#define NGX_OMNIBUS_RATE_MAX          100000


typedef struct {
    ngx_uint_t                  rate;        /* admissions per window */
    ngx_msec_t                  window;
} ngx_omnibus_rate_t;


ngx_int_t ngx_omnibus_rate_parse(ngx_str_t *value, ngx_omnibus_rate_t *rate);
void ngx_omnibus_limit_identity(ngx_omnibus_rate_t *rate, ngx_str_t *key,
    u_char *identity);
ngx_int_t ngx_omnibus_limit_admit(ngx_omnibus_zone_t *zone,
    ngx_omnibus_rate_t *rate, ngx_str_t *key, time_t *retry_after);


#endif /* _NGX_OMNIBUS_LIMIT_H_INCLUDED_ */
