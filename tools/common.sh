# Shared by tools/test.sh and tools/demo.sh: package installation and the build.
# Source it from the top of the repository.

# Installs the Debian packages given as arguments that are missing. apt-get update runs
# once, and only when something is missing. Package scripts may not start services
# (Debian's apache2 would otherwise start on port 80 with its default site).
install_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0

    if [ "$(id -u)" -ne 0 ]; then
        echo "error: missing packages: ${missing[*]}; run as root or install them" >&2
        return 1
    fi
    echo "Installing: ${missing[*]}"
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        own_policy=1
    fi
    local status=0
    apt-get update -qq || status=$?
    if [ "$status" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null || status=$?
    fi
    [ "$own_policy" -eq 1 ] && rm -f "$policy"
    return "$status"
}

BUILD_PACKAGES=(gcc make autoconf automake libtool pkg-config apache2 apache2-dev
                libcurl4-openssl-dev libcjson-dev libssl-dev)
RUNTIME_PACKAGES=(libapache2-mod-php php-cli python3 python3-cryptography)

# Builds src/.libs/mod_auth_scalekit.so in the source tree.
build_module() {
    if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt configure ]; then
        autoreconf -fi >/dev/null
    fi
    if [ ! -f Makefile ] || [ configure -nt Makefile ]; then
        ./configure -q
    fi
    make -s >/dev/null
}
