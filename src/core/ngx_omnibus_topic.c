
/*
 * Topic names and their hash.  Valid names are 1-255 bytes of
 * [A-Za-z0-9_.:-] in dot-separated tokens, none of them empty.
 */


#include <ngx_omnibus_core.h>


ngx_int_t
ngx_omnibus_topic_valid(ngx_str_t *topic)
{
    u_char      c, prev;
    ngx_uint_t  i;

    if (topic->len == 0 || topic->len > NGX_OMNIBUS_TOPIC_MAX) {
        return NGX_DECLINED;
    }

    prev = '.';

    for (i = 0; i < topic->len; i++) {
        c = topic->data[i];

        if (c == '.') {
            if (prev == '.') {
                return NGX_DECLINED;
            }

        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                     || (c >= '0' && c <= '9')
                     || c == '_' || c == ':' || c == '-'))
        {
            return NGX_DECLINED;
        }

        prev = c;
    }

    return prev == '.' ? NGX_DECLINED : NGX_OK;
}


uint32_t
ngx_omnibus_topic_hash(u_char *p, size_t len)
{
    uint32_t  h;

    /* FNV-1a, then a murmur3 finalizer: spreads short, similar names */

    h = 2166136261u;

    while (len--) {
        h = (h ^ *p++) * 16777619u;
    }

    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;

    return h;
}
