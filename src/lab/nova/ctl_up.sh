#!/bin/bash
# The Nova lab's control plane: runs as the first process of namespace ferry-nova, inside a
# mount namespace of its own with private propagation (ferry's lab module starts it so), so
# that every mount below vanishes with it and none can reach the machine's own tree.
#
# It overlays the cached package tree (never written) with the lab's own upper directory,
# writes every config file, creates the databases, starts RabbitMQ, MariaDB, Keystone,
# Placement, Glance, neutron-server and Nova's API, conductor and scheduler in the order they
# need each other, reports "ready" in CTL_DIR/status and stays as the namespace's holder.
#
# usage: ctl_up.sh ROOTFS CTL_DIR CTL_IP PASSWORD
set -euo pipefail
rootfs=$1
ctl_dir=$2
ip=$3
password=$4
root=$ctl_dir/root

fail() {
  echo "failed: $*" >"$ctl_dir/status"
  exit 1
}
trap 'fail "ctl_up.sh stopped at line $LINENO (see $ctl_dir/logs)"' ERR
started=$(date +%s.%N)
step() { awk -v a="$started" -v b="$(date +%s.%N)" -v what="$*" 'BEGIN { printf "%6.1f s %s\n", b - a, what }' >>"$ctl_dir/steps"; }
: >"$ctl_dir/steps"

ip link set lo up
mkdir -p "$ctl_dir/upper" "$ctl_dir/work" "$root" "$ctl_dir/logs"
mount -t overlay ferry-nova-ctl -o "lowerdir=$rootfs,upperdir=$ctl_dir/upper,workdir=$ctl_dir/work" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
# Files the lab hands in from outside (clouds.yaml, the guest's boot files for Glance): the
# overlay is mounted only in this namespace, so they cannot be written into it from outside.
mkdir -p "$ctl_dir/exchange" "$root/ferry-lab"
mount --bind "$ctl_dir/exchange" "$root/ferry-lab"
in_root() { chroot "$root" "$@"; }
# Starts a service in the background with its output in logs/NAME.out and its pid recorded.
service() {
  local name=$1
  shift
  setsid chroot "$root" "$@" >"$ctl_dir/logs/$name.out" 2>&1 </dev/null &
  echo "$name $!" >>"$ctl_dir/pids"
}
: >"$ctl_dir/pids"
echo "holder $$" >>"$ctl_dir/pids"

# ---- config files (each written into the overlay's upper directory)
auth_block() { # section, user
  cat <<CONF
[$1]
auth_url = http://$ip:5000/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = $2
password = $password
region_name = RegionOne
CONF
}
sqlite_url() { echo "sqlite:////var/lib/$1/$1.sqlite?check_same_thread=False&timeout=30"; }
www_auth() { auth_block keystone_authtoken "$1"; echo "www_authenticate_uri = http://$ip:5000"; }

cat >"$root/etc/keystone/keystone.conf" <<CONF
[DEFAULT]
log_dir = /var/log/keystone
[database]
connection = $(sqlite_url keystone)
[token]
provider = fernet
[fernet_tokens]
key_repository = /etc/keystone/fernet-keys/
[credential]
key_repository = /etc/keystone/credential-keys/
CONF
{
  printf '[DEFAULT]\nlog_dir = /var/log/placement\n[api]\nauth_strategy = keystone\n'
  printf '[placement_database]\nconnection = %s\n' "$(sqlite_url placement)"
  www_auth placement
} >"$root/etc/placement/placement.conf"
{
  cat <<CONF
[DEFAULT]
bind_host = $ip
bind_port = 9292
workers = 1
log_dir = /var/log/glance
enabled_backends = fs:file
[database]
connection = $(sqlite_url glance)
[glance_store]
default_backend = fs
[fs]
filesystem_store_datadir = /var/lib/glance/images/
[os_glance_staging_store]
filesystem_store_datadir = /var/lib/glance/staging/
[os_glance_tasks_store]
filesystem_store_datadir = /var/lib/glance/tasks/
[paste_deploy]
flavor = keystone
[oslo_concurrency]
lock_path = /var/lib/glance/lock
CONF
  www_auth glance
} >"$root/etc/glance/glance-api.conf"
# Nova calls Neutron on every migration even for servers without networks: a bare ML2 with no
# agents answers those calls. service_plugins = router, or listing ports fails with a 500.
{
  cat <<CONF
[DEFAULT]
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
bind_host = $ip
bind_port = 9696
api_workers = 1
rpc_workers = 0
rpc_state_report_workers = 0
transport_url = rabbit://nova:$password@$ip:5672/
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
log_dir = /var/log/neutron
[database]
connection = $(sqlite_url neutron)
[oslo_concurrency]
lock_path = /var/lib/neutron/lock
CONF
  www_auth neutron
} >"$root/etc/neutron/neutron.conf"
printf '[ml2]\ntype_drivers = flat\ntenant_network_types =\nmechanism_drivers =\nextension_drivers = port_security\n[ml2_type_flat]\nflat_networks = *\n' \
  >"$root/etc/neutron/plugins/ml2/ml2_conf.ini"
# Nova's own databases are on MariaDB: on sqlite a live migration failed with "database is
# locked" while the conductor saved its progress.
{
  cat <<CONF
[DEFAULT]
my_ip = $ip
host = ferry-nova
enabled_apis = osapi_compute
osapi_compute_listen = $ip
osapi_compute_workers = 1
transport_url = rabbit://nova:$password@$ip:5672/
state_path = /var/lib/nova
log_dir = /var/log/nova
[api]
auth_strategy = keystone
[api_database]
connection = mysql+pymysql://nova:$password@$ip/nova_api
[database]
connection = mysql+pymysql://nova:$password@$ip/nova
[service_user]
send_service_user_token = false
[oslo_concurrency]
lock_path = /var/lib/nova/lock
[scheduler]
discover_hosts_in_cells_interval = 10
workers = 1
[conductor]
workers = 1
[wsgi]
api_paste_config = /etc/nova/api-paste.ini
CONF
  www_auth nova
  auth_block placement placement
  auth_block neutron neutron
  auth_block glance glance
} >"$root/etc/nova/nova.conf"
cat >"$root/etc/mysql/mariadb.conf.d/99-ferry-lab.cnf" <<CONF
[mysqld]
bind-address = $ip
innodb_buffer_pool_size = 32M
innodb_log_file_size = 16M
performance_schema = OFF
max_connections = 300
skip-name-resolve
CONF
# keystone, placement and nova-api behind uwsgi: one process, one thread (threads shared
# sqlite connections), and no keep-alive (reused connections were reset).
cat >"$root/usr/local/bin/ferry-uwsgi" <<'CONF'
#!/bin/sh
name=$1; bind=$2; app=$3
exec uwsgi --plugins python3 --http-socket "$bind" --wsgi-file "$app" --master --processes 1 \
  --threads 1 --lazy-apps --enable-threads --die-on-term --buffer-size 65535 \
  --add-header "Connection: close" --procname-prefix-spaced "$name" --logto "/var/log/uwsgi-$name.log"
CONF
chmod +x "$root/usr/local/bin/ferry-uwsgi"
cat >"$root/root/neutron_schema.py" <<'PY'
# neutron-db-manage cannot upgrade sqlite (no ALTER of constraints): build the schema from
# the models, then stamp it as current.
import sqlalchemy
from neutron.db.migration.models import head
engine = sqlalchemy.create_engine('sqlite:////var/lib/neutron/neutron.sqlite')
head.get_metadata().create_all(engine)
PY
wal() { for db in "$@"; do in_root python3 -c "import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute('PRAGMA journal_mode=WAL')" "$db"; done; }
step "config written"

# ---- databases and RabbitMQ, in parallel
service rabbitmq env HOME=/var/lib/rabbitmq RABBITMQ_NODENAME=rabbit@localhost \
  RABBITMQ_NODE_IP_ADDRESS="$ip" /usr/lib/rabbitmq/bin/rabbitmq-server
log=$ctl_dir/logs
(
  in_root keystone-manage db_sync
  in_root keystone-manage fernet_setup --keystone-user root --keystone-group root
  in_root keystone-manage credential_setup --keystone-user root --keystone-group root
  in_root keystone-manage bootstrap --bootstrap-password "$password" \
    --bootstrap-admin-url "http://$ip:5000/v3/" --bootstrap-internal-url "http://$ip:5000/v3/" \
    --bootstrap-public-url "http://$ip:5000/v3/" --bootstrap-region-id RegionOne
  wal /var/lib/keystone/keystone.sqlite
) >"$log/db-keystone.log" 2>&1 &
jobs_started="$!"
(in_root placement-manage db sync && wal /var/lib/placement/placement.sqlite) >"$log/db-placement.log" 2>&1 &
jobs_started="$jobs_started $!"
(in_root glance-manage db_sync && wal /var/lib/glance/glance.sqlite) >"$log/db-glance.log" 2>&1 &
jobs_started="$jobs_started $!"
(
  in_root python3 /root/neutron_schema.py
  wal /var/lib/neutron/neutron.sqlite
  in_root neutron-db-manage --config-file /etc/neutron/neutron.conf \
    --config-file /etc/neutron/plugins/ml2/ml2_conf.ini stamp heads
) >"$log/db-neutron.log" 2>&1 &
jobs_started="$jobs_started $!"
mkdir -p "$root/run/mysqld"
in_root chown mysql /run/mysqld
service mariadb mariadbd --user=mysql
(
  for _ in $(seq 120); do in_root mariadb -e 'select 1' >/dev/null 2>&1 && break; sleep 0.5; done
  in_root mariadb -e "CREATE DATABASE nova_api; CREATE DATABASE nova; CREATE DATABASE nova_cell0;
    CREATE USER nova@'%' IDENTIFIED BY '$password';
    GRANT ALL ON nova_api.* TO nova@'%'; GRANT ALL ON nova.* TO nova@'%';
    GRANT ALL ON nova_cell0.* TO nova@'%';"
  in_root nova-manage api_db sync
  in_root nova-manage cell_v2 map_cell0 --database_connection "mysql+pymysql://nova:$password@$ip/nova_cell0"
  in_root nova-manage cell_v2 create_cell --name cell1
  in_root nova-manage db sync
) >"$log/db-nova.log" 2>&1 &
jobs_started="$jobs_started $!"
for job in $jobs_started; do
  wait "$job" || fail "a database set-up failed (see $log/db-*.log)"
done
step "databases created"
for _ in $(seq 120); do
  in_root env HOME=/var/lib/rabbitmq rabbitmqctl -q -n rabbit@localhost status >/dev/null 2>&1 && break
  sleep 0.5
done
in_root env HOME=/var/lib/rabbitmq rabbitmqctl -q -n rabbit@localhost add_user nova "$password" >/dev/null
in_root env HOME=/var/lib/rabbitmq rabbitmqctl -q -n rabbit@localhost set_permissions nova '.*' '.*' '.*' >/dev/null
step "rabbitmq up"

# ---- the APIs
service keystone ferry-uwsgi keystone "$ip:5000" /usr/bin/keystone-wsgi-public
service placement ferry-uwsgi placement "$ip:8778" /usr/bin/placement-api
service glance glance-api --config-file /etc/glance/glance-api.conf
service neutron neutron-server --config-file /etc/neutron/neutron.conf \
  --config-file /etc/neutron/plugins/ml2/ml2_conf.ini
service nova-api ferry-uwsgi nova-api "$ip:8774" /usr/bin/nova-api-wsgi
for port in 5000 8778 9292 9696 8774; do
  for _ in $(seq 480); do curl -s -o /dev/null "http://$ip:$port/" && break; sleep 0.25; done
  curl -s -o /dev/null "http://$ip:$port/" || fail "nothing answers on port $port (see $log)"
done
step "APIs answer"

# ---- users, projects, the catalog; then the services that need them
in_root python3 - "$ip" "$password" >"$log/keystone-setup.log" 2>&1 <<'PY' || fail "keystone set-up failed (see $log/keystone-setup.log)"
import sys
from keystoneauth1 import session
from keystoneauth1.identity import v3
from keystoneclient.v3 import client
ip, password = sys.argv[1], sys.argv[2]
ks = client.Client(session=session.Session(auth=v3.Password(
    auth_url=f'http://{ip}:5000/v3', username='admin', password=password, project_name='admin',
    user_domain_name='Default', project_domain_name='Default')))
roles = {r.name: r for r in ks.roles.list()}
for name in ('service', 'member'):
    if name not in roles:
        roles[name] = ks.roles.create(name)
service_project = ks.projects.create('service', 'default')
for user in ('nova', 'placement', 'glance', 'neutron'):
    ks.roles.grant(roles['admin'], user=ks.users.create(user, domain='default', password=password),
                   project=service_project)
# A user of an ordinary project with no admin role: ferry's refusals for that case are tested.
demo_project = ks.projects.create('demo', 'default')
ks.roles.grant(roles['member'], user=ks.users.create('demo', domain='default', password=password),
               project=demo_project)
for service_type, name, url in (('compute', 'nova', f'http://{ip}:8774/v2.1'),
                                ('placement', 'placement', f'http://{ip}:8778'),
                                ('image', 'glance', f'http://{ip}:9292'),
                                ('network', 'neutron', f'http://{ip}:9696')):
    service = ks.services.create(name, type=service_type)
    for interface in ('public', 'internal', 'admin'):
        ks.endpoints.create(service, url, interface=interface, region='RegionOne')
# neutron-server's first port listing after its start can fail with a 500 (its API mapper
# is completed by the first network listing), and Nova lists ports on every boot and
# migration: list networks, then ports, until both answer.
import time
for _ in range(60):
    codes = [ks.session.get(f'http://{ip}:9696/v2.0/{what}', authenticated=True,
                            raise_exc=False).status_code for what in ('networks', 'ports')]
    if codes == [200, 200]:
        break
    time.sleep(1)
else:
    raise SystemExit(f'neutron-server does not list networks and ports: {codes}')
print('keystone set up, neutron warmed')
PY
step "keystone users and catalog"
# conductor and scheduler exit at start if their placement credentials are refused, so they
# start only now.
service nova-conductor nova-conductor --config-file /etc/nova/nova.conf
service nova-scheduler nova-scheduler --config-file /etc/nova/nova.conf
echo "ready $ip" >"$ctl_dir/status"
step "control plane ready"
trap - ERR
exec sleep infinity
