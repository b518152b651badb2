
/*
 * Topic names: 1-255 bytes of [A-Za-z0-9_.:-] in dot-separated tokens.
 */


#ifndef _NGX_OMNIBUS_TOPIC_H_INCLUDED_
#define _NGX_OMNIBUS_TOPIC_H_INCLUDED_


ngx_int_t ngx_omnibus_topic_valid(ngx_str_t *topic);
uint32_t ngx_omnibus_topic_hash(u_char *p, size_t len);


#endif /* _NGX_OMNIBUS_TOPIC_H_INCLUDED_ */
