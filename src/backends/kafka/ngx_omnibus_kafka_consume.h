
/*
 * omnibus_kafka_consume: Kafka records into the bus, by every worker in
 * one consumer group.
 */


#ifndef _NGX_OMNIBUS_KAFKA_CONSUME_H_INCLUDED_
#define _NGX_OMNIBUS_KAFKA_CONSUME_H_INCLUDED_


#include <ngx_omnibus_delivery.h>


char *ngx_omnibus_kafka_consume_parse(ngx_conf_t *cf,
    ngx_omnibus_zone_t *zone, ngx_str_t *value, ngx_uint_t n);
ngx_int_t ngx_omnibus_kafka_consume_init_process(ngx_omnibus_zone_t *zone,
    ngx_cycle_t *cycle);
void ngx_omnibus_kafka_consume_exit_process(ngx_omnibus_zone_t *zone);


#endif /* _NGX_OMNIBUS_KAFKA_CONSUME_H_INCLUDED_ */
