
/*
 * omnibus_store: the zone's messages kept in PostgreSQL until they are
 * done with every route, its dead letters too, and loaded back when the
 * zone starts empty.
 */


#ifndef _NGX_OMNIBUS_PG_STORE_H_INCLUDED_
#define _NGX_OMNIBUS_PG_STORE_H_INCLUDED_


#include <ngx_omnibus_delivery.h>


char *ngx_omnibus_pg_store_parse(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value, ngx_uint_t n);
ngx_int_t ngx_omnibus_pg_store_init_process(ngx_omnibus_zone_t *zone,
    ngx_str_t *node, ngx_cycle_t *cycle);
void ngx_omnibus_pg_store_exit_process(ngx_omnibus_zone_t *zone);


#endif /* _NGX_OMNIBUS_PG_STORE_H_INCLUDED_ */
