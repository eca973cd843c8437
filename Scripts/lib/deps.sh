# Installs the system packages Nimbus builds against, when missing (Debian; needs root or sudo).
# libzmq for the wire, OpenSSL for the notifier's SMTP over TLS (and its CLI for the tests' certificates),
# tcmalloc, which every Nimbus executable links as its allocator (Package.swift), zlib for the AWS
# endpoint's gzipped request bodies.
ensure_system_deps() {
  if pkg-config --exists libzmq openssl zlib 2>/dev/null && command -v openssl >/dev/null \
     && [[ "$(ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null)" == *"libtcmalloc_minimal.so.4 "* ]]; then return 0; fi
  echo "nimbus: installing libzmq3-dev, libssl-dev, zlib1g-dev, openssl, pkg-config and libtcmalloc-minimal4 ..." >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libzmq3-dev libssl-dev zlib1g-dev openssl pkg-config libtcmalloc-minimal4 >/dev/null
}

# Python packages the integration tests use as independent clients.
ensure_python_deps() {
  # boto3, the AWS CLI and moto: the AWS endpoint's compatibility tests (moto only to check the tests).
  # awslambdaric (AWS's Lambda runtime interface client) and boto3: what Python functions run on
  # (`Runtime: python3.x`; README, "Python functions"). cfn-lint: the stacks are valid CloudFormation.
  python3 -c "import zmq, pytest, requests, yaml, openapi_spec_validator, aiosmtpd, boto3, moto, awslambdaric" 2>/dev/null \
    && command -v aws >/dev/null && command -v cfn-lint >/dev/null && return 0
  echo "nimbus: installing Python test clients (pyzmq, pytest, requests, pyyaml, openapi-spec-validator, aiosmtpd, boto3, awscli, moto, awslambdaric, cfn-lint) ..." >&2
  python3 -m pip install -q pyzmq pytest requests pyyaml openapi-spec-validator aiosmtpd boto3 awscli "moto[server]" awslambdaric cfn-lint 2>&1 | grep -v "Running pip as the 'root' user" >&2 || true
  python3 -c "import zmq, pytest, requests, yaml, openapi_spec_validator, aiosmtpd, boto3, awslambdaric"
}

# iproute2 and iptables for the multi-host test (Tests/integration/test_multihost.py): network
# namespaces stand for hosts, iptables injects packet loss and sends packets to the test's delayer.
# Returns non-zero when they cannot be installed; that test then skips, saying why.
ensure_netns_deps() {
  command -v ip >/dev/null && command -v iptables >/dev/null && return 0
  echo "nimbus: installing iproute2 and iptables (for the multi-host test) ..." >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  local install=($sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 iptables)
  if ! "${install[@]}" >/dev/null 2>&1; then
    $sudo apt-get update -qq >/dev/null || true
    "${install[@]}" >/dev/null || return 1
  fi
}

# Headless Chromium, its WebDriver and Selenium, for the console's browser tests
# (Tests/integration/test_console_browser.py). Returns non-zero when they cannot be installed; those
# tests then skip, saying so. apt-get update runs only when the package lists do not know chromium
# or an install from them fails.
ensure_browser_deps() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "nimbus: installing chromium and chromium-driver (for the console's browser tests) ..." >&2
    local install=($sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)
    if ! apt-cache show chromium-driver >/dev/null 2>&1; then $sudo apt-get update -qq >/dev/null || true; fi
    if ! "${install[@]}" >/dev/null 2>&1; then
      $sudo apt-get update -qq >/dev/null || true
      "${install[@]}" >/dev/null || return 1
    fi
  fi
  python3 -c "import selenium" 2>/dev/null && return 0
  echo "nimbus: installing Selenium (for the console's browser tests) ..." >&2
  python3 -m pip install -q selenium 2>&1 | grep -v "Running pip as the 'root' user" >&2 || true
  python3 -c "import selenium"
}
