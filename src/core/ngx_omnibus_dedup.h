
/*
 * Idempotency: identities remembered with their first id for dedup_ttl.
 */


#ifndef _NGX_OMNIBUS_DEDUP_H_INCLUDED_
#define _NGX_OMNIBUS_DEDUP_H_INCLUDED_


typedef enum {
    NGX_OMNIBUS_DEDUP_OFF = 0,
    NGX_OMNIBUS_DEDUP_KEY,
    NGX_OMNIBUS_DEDUP_CONTENT
} ngx_omnibus_dedup_mode_e;


void ngx_omnibus_dedup_identity(ngx_omnibus_offer_t *offer, ngx_uint_t mode);
ngx_int_t ngx_omnibus_dedup_find_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *offer, u_char *id);
ngx_int_t ngx_omnibus_dedup_insert_locked(ngx_omnibus_zone_t *zone,
    ngx_omnibus_offer_t *offer, u_char *id);

void ngx_omnibus_dedup_settle_locked(ngx_omnibus_zone_t *zone,
    u_char *identity, u_char *id, ngx_uint_t accepted);
void ngx_omnibus_dedup_redirect_locked(ngx_omnibus_zone_t *zone,
    u_char *identity, u_char *id, u_char *first);


#endif /* _NGX_OMNIBUS_DEDUP_H_INCLUDED_ */
