# Shared by bench/run.sh and bench/profile.sh: sourced, not run.

NGINX=${NGINX_BIN:-/usr/sbin/nginx}
# nginx reads $NGINX as a list of inherited listening sockets (binary
# upgrade) and then stays in the foreground: never pass it on
unset NGINX_BIN
export -n NGINX 2>/dev/null || true
NCHAN_MODULE=${NCHAN_MODULE:-/usr/lib/nginx/modules/ngx_nchan_module.so}

free_port() {  # free_port [PORT...]: a free loopback port, not one of these
    perl -MIO::Socket::INET -e '
        my %taken = map { $_ => 1 } @ARGV;
        my @held;    # kept open, so that the next try is another port
        while (1) {
            my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1",
                LocalPort => 0, Listen => 1, ReuseAddr => 1) or die $!;
            push @held, $s;
            next if $taken{$s->sockport};
            print $s->sockport;
            last;
        }' "$@"
}

json_body() {  # json_body SIZE FILE: {"seq":0,"pad":"xx..."} of SIZE bytes
    perl -e 'my ($h, $t) = (q({"seq":0,"pad":"), q("}));
             print $h, "x" x ($ARGV[0] - length($h) - length($t)), $t' \
        "$1" > "$2"
}

# the publish targets of section 1, in the http block and in a server block:
# omnibus, the same without JSON validation, and the `return 202` ceiling
publish_zone_conf() {
    cat <<'CONF'
    omnibus_zone zone=bus:256m shards=8 min_shards=2 max_shards=16
                 queue_size=100000 retain=100 backpressure=100%:99%;
CONF
}

publish_locations() {
    cat <<'CONF'
        client_max_body_size 1m;
        client_body_buffer_size 32k;

        location /publish/   { omnibus_publish bus; }
        location /raw/       { omnibus_publish bus; omnibus_json off; }
        location /plain/ {
            default_type application/json;
            return 202 '{"id":"x"}';
        }
CONF
}

nchan_locations() {
    cat <<'CONF'
        location ~ ^/nchan/pub/(.+)$ { nchan_publisher; nchan_channel_id $1; }
        location ~ ^/nchan/sub/(.+)$ {
            nchan_subscriber eventsource;
            nchan_channel_id $1;
        }
CONF
}
