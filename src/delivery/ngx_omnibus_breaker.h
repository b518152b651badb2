
/*
 * A circuit breaker shared by every worker: routes have one, and so will
 * each backend.
 */


#ifndef _NGX_OMNIBUS_BREAKER_H_INCLUDED_
#define _NGX_OMNIBUS_BREAKER_H_INCLUDED_


typedef struct {
    ngx_uint_t                  failures;    /* consecutive, to open */
    ngx_msec_t                  timeout;     /* open, before half-open */
    ngx_uint_t                  successes;   /* consecutive, to close */
} ngx_omnibus_breaker_conf_t;


/* a breaker as one worker sees it */
typedef struct {
    ngx_omnibus_breaker_conf_t  conf;
    ngx_omnibus_breaker_sh_t   *sh;
    ngx_slab_pool_t            *shpool;
    const char                 *kind;        /* "route", ... for logs */
    ngx_str_t                  *name;
    ngx_log_t                  *log;
    ngx_uint_t                  probing;     /* ours, in half-open */
} ngx_omnibus_breaker_t;


ngx_int_t ngx_omnibus_breaker_parse(ngx_str_t *value,
    ngx_omnibus_breaker_conf_t *conf);
const char *ngx_omnibus_breaker_name(ngx_uint_t state);
ngx_int_t ngx_omnibus_breaker_admit(ngx_omnibus_breaker_t *b,
    ngx_uint_t *probe, ngx_msec_t *wait);
void ngx_omnibus_breaker_record(ngx_omnibus_breaker_t *b, ngx_uint_t probe,
    ngx_uint_t failed);
void ngx_omnibus_breaker_close(ngx_omnibus_breaker_t *b);
ngx_msec_t ngx_omnibus_breaker_open_for(ngx_omnibus_breaker_t *b);


#endif /* _NGX_OMNIBUS_BREAKER_H_INCLUDED_ */
