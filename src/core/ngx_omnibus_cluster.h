
/*
 * The pods of one bus as each sees the others: a backend (Redis) that
 * claims idempotency keys and counts rate limits for all of them, relays
 * dispatched messages to the subscribers of the other pods, and names
 * one worker of the cluster to do singleton work.  omnibus_redis points a
 * zone at one.  Like the store, this is an interface: the layers above
 * and below know no backend.  Whatever the backend cannot do now, the
 * pod does alone, and the backend counts it.
 */


#ifndef _NGX_OMNIBUS_CLUSTER_H_INCLUDED_
#define _NGX_OMNIBUS_CLUSTER_H_INCLUDED_


typedef enum {
    NGX_OMNIBUS_CLUSTER_DEDUP = 0,
    NGX_OMNIBUS_CLUSTER_LIMIT,
    NGX_OMNIBUS_CLUSTER_FANOUT,
    NGX_OMNIBUS_CLUSTER_FEATURES
} ngx_omnibus_cluster_feature_e;


typedef struct ngx_omnibus_cluster_wait_s  ngx_omnibus_cluster_wait_t;

/* a publish waiting for the cluster's answer */
struct ngx_omnibus_cluster_wait_s {
    void                      (*handler)(ngx_omnibus_cluster_wait_t *w);
    void                       *data;        /* NULL: the request is gone */

    /*
     * NGX_OK: claimed or admitted; NGX_DECLINED: a duplicate (first) or
     * limited (retry_after); NGX_BUSY: claimed by a message not yet
     * durable; NGX_ERROR: no answer, the pod decides alone
     */
    ngx_int_t                   rc;
    time_t                      retry_after;
    u_char                      first[NGX_OMNIBUS_ID_LEN];
    void                       *cmd;         /* in flight, or NULL */
};


struct ngx_omnibus_cluster_s {
    ngx_uint_t                  features;    /* 1 << feature */

    /*
     * claims identity for the message queued (held) under id: NGX_AGAIN
     * and the wait's handler runs with the answer, or NGX_DECLINED when
     * the cluster cannot be asked now (counted as a fallback).  With
     * pending, the claim is provisional for that long: until confirm(),
     * others are told to retry, not that it is a duplicate, so a pod
     * that dies before its message is durable leaves no claim behind
     * to answer for a message that does not exist.
     */
    ngx_int_t                 (*claim)(ngx_omnibus_zone_t *zone,
                                       u_char *identity, u_char *id,
                                       ngx_msec_t pending,
                                       ngx_omnibus_cluster_wait_t *wait);

    /* the provisionally claimed message is durable: a duplicate now */
    void                      (*confirm)(ngx_omnibus_zone_t *zone,
                                         u_char *identity, u_char *id);

    /* a claimed message was refused after all: its identity is free */
    void                      (*unclaim)(ngx_omnibus_zone_t *zone,
                                         u_char *identity, u_char *id);

    /* one admission of key under rate, answered as claim is */
    ngx_int_t                 (*limit)(ngx_omnibus_zone_t *zone,
                                       ngx_omnibus_rate_t *rate,
                                       ngx_str_t *key,
                                       ngx_omnibus_cluster_wait_t *wait);

    /* the waiting request went away */
    void                      (*detach)(ngx_omnibus_cluster_wait_t *wait);

    /* under the zone lock: a message entered its shard's retain ring */
    void                      (*relay)(ngx_omnibus_zone_t *zone,
                                       ngx_omnibus_msg_t *msg);

    void                       *data;        /* the backend's */
};


#define ngx_omnibus_cluster_has(zone, feature)                              \
    ((zone)->cluster && ((zone)->cluster->features & (1 << (feature))))


ngx_int_t ngx_omnibus_cluster_leads(ngx_omnibus_zone_t *zone);


#endif /* _NGX_OMNIBUS_CLUSTER_H_INCLUDED_ */
