
/*
 * NATS-style topic patterns: "*" is one token, a final ">" the rest.
 */


#ifndef _NGX_OMNIBUS_PATTERN_H_INCLUDED_
#define _NGX_OMNIBUS_PATTERN_H_INCLUDED_


ngx_int_t ngx_omnibus_pattern_valid(ngx_str_t *pattern);
ngx_int_t ngx_omnibus_pattern_match(ngx_str_t *pattern, u_char *topic,
    size_t len);


#endif /* _NGX_OMNIBUS_PATTERN_H_INCLUDED_ */
