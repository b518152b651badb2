
/*
 * The durable store as the bus sees it: a backend (PostgreSQL) that keeps
 * a row for every accepted message until the message is done with every
 * route.  omnibus_store points a zone at one; the publish handler writes
 * through it, and the zone reports completions and dead letters to it.
 * Like the sink table, this is an interface: the layers above and below
 * know no backend.
 */


#ifndef _NGX_OMNIBUS_STORE_H_INCLUDED_
#define _NGX_OMNIBUS_STORE_H_INCLUDED_


typedef enum {
    NGX_OMNIBUS_STORE_LOAD = 0,              /* a new zone: rows to load */
    NGX_OMNIBUS_STORE_LOADING,
    NGX_OMNIBUS_STORE_READY
} ngx_omnibus_store_state_e;


typedef struct ngx_omnibus_store_wait_s  ngx_omnibus_store_wait_t;

/* a publish waiting for its rows to be committed (mode=sync) */
struct ngx_omnibus_store_wait_s {
    void                      (*handler)(ngx_omnibus_store_wait_t *w);
    void                       *data;
    ngx_uint_t                  rows;        /* not yet committed */
    ngx_uint_t                  failed;      /* rows the store refused */
    ngx_queue_t                 queue;       /* in the store's batch */
    void                       *batch;       /* NULL: waits for nothing */
};


struct ngx_omnibus_store_s {
    /* mode=sync: messages are held in their queue until committed */
    ngx_uint_t                  sync;

    /* the longest a write may wait to be committed or refused */
    ngx_msec_t                  timeout;

    /* can a publish be taken now: NGX_OK, or NGX_DECLINED and why */
    ngx_int_t                 (*admit)(ngx_omnibus_zone_t *zone,
                                       const char **why);

    /*
     * the row of a message just queued under id: held is the message
     * (mode=sync), released or removed once its batch commits or fails,
     * then the wait's handler runs
     */
    ngx_int_t                 (*write)(ngx_omnibus_zone_t *zone,
                                       ngx_omnibus_offer_t *offer,
                                       u_char *id, ngx_omnibus_msg_t *held,
                                       ngx_omnibus_store_wait_t *wait);

    /* the waiting request went away: its rows are written all the same */
    void                      (*detach)(ngx_omnibus_store_wait_t *wait);

    /* under the zone lock: the message is done with every route */
    void                      (*done)(ngx_omnibus_zone_t *zone,
                                      ngx_omnibus_msg_t *msg);

    /* a dead letter kept, every dead letter purged, one replayed */
    void                      (*dead)(ngx_omnibus_zone_t *zone,
                                      ngx_omnibus_msg_t *msg,
                                      ngx_str_t *route, ngx_uint_t attempts,
                                      u_char *error, size_t len);
    void                      (*purged)(ngx_omnibus_zone_t *zone);
    void                      (*replayed)(ngx_omnibus_zone_t *zone,
                                          ngx_omnibus_msg_t *msg);

    void                       *data;        /* the backend's */
};


#endif /* _NGX_OMNIBUS_STORE_H_INCLUDED_ */
