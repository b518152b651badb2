
/*
 * The Kafka sink: routes with kafka://BROKERS/TOPIC-TEMPLATE URLs, and
 * the replay of their fallback files.
 */


#ifndef _NGX_OMNIBUS_SINK_KAFKA_H_INCLUDED_
#define _NGX_OMNIBUS_SINK_KAFKA_H_INCLUDED_


#include <ngx_omnibus_delivery.h>


/* a replay's outcome: records sent, acknowledged, and kept in the file */
typedef struct {
    ngx_uint_t                  sent;
    ngx_uint_t                  acked;
    ngx_uint_t                  kept;
} ngx_omnibus_kafka_replayed_t;

typedef void (*ngx_omnibus_kafka_replay_pt)(void *data,
    ngx_omnibus_kafka_replayed_t *result);


/* why the cluster could not be reached, as counted per route */
#define NGX_OMNIBUS_KAFKA_REASONS  4


extern ngx_omnibus_sink_t   ngx_omnibus_sink_kafka;
extern const char          *ngx_omnibus_kafka_reasons[];


ngx_int_t ngx_omnibus_kafka_replay(ngx_omnibus_zone_t *zone,
    ngx_omnibus_kafka_replay_pt done, void *data,
    ngx_omnibus_kafka_replayed_t *result, void **handle);
void ngx_omnibus_kafka_replay_detach(void *handle);


#endif /* _NGX_OMNIBUS_SINK_KAFKA_H_INCLUDED_ */
