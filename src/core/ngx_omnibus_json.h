
/*
 * JSON: strict validation of bodies (RFC 8259, RFC 3629) and escaping of
 * strings.
 */


#ifndef _NGX_OMNIBUS_JSON_H_INCLUDED_
#define _NGX_OMNIBUS_JSON_H_INCLUDED_


#define NGX_OMNIBUS_JSON_DEPTH        64


ngx_int_t ngx_omnibus_json_valid(u_char *p, size_t len, ngx_str_t *err);
u_char *ngx_omnibus_json_escape(u_char *dst, u_char *src, size_t len);
size_t ngx_omnibus_json_escaped_len(u_char *src, size_t len);
ngx_int_t ngx_omnibus_ndjson_next(u_char **pos, u_char *last,
    ngx_str_t *line);


#endif /* _NGX_OMNIBUS_JSON_H_INCLUDED_ */
