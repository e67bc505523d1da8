#!/usr/bin/env bash
# Creates one PostgreSQL role and one database per Tend service, each database owned by its service's role and closed
# to every other role. The postgres image runs this once, when its data volume is first initialised; it is idempotent,
# so after adding a service it can be run again by hand (docs/deploy.md, "Adding a service").
# Passwords come from TEND_<NAME>_DB_PASSWORD in the environment (deploy/compose/.env), never from this file.
set -euo pipefail

SERVICES_WITH_DATABASE="${TEND_DATABASE_SERVICES:-identity checkin indicators notify audit}"

create_service_database() {
    local service="$1"
    local password_variable="TEND_${service^^}_DB_PASSWORD"
    if [[ -z "${!password_variable:-}" ]]; then
        echo "init-databases: $password_variable is not set" >&2
        return 1
    fi
    # The password reaches psql through its environment (\getenv), not its command line, so `ps` never shows it;
    # psql quotes :"name" as an identifier and :'password' as a literal.
    TEND_DB_PASSWORD="${!password_variable}" psql --no-psqlrc -v ON_ERROR_STOP=1 \
        --username "${POSTGRES_USER:-postgres}" --dbname postgres --set=name="tend_${service}" <<'SQL'
\getenv password TEND_DB_PASSWORD
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') AS role_missing \gset
\if :role_missing
CREATE ROLE :"name" LOGIN PASSWORD :'password';
\else
ALTER ROLE :"name" LOGIN PASSWORD :'password';
\endif
SELECT NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') AS database_missing \gset
\if :database_missing
CREATE DATABASE :"name" OWNER :"name";
\endif
-- No other role may connect: each service reaches only its own data.
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
    echo "init-databases: tend_${service} ready"
}

for service in $SERVICES_WITH_DATABASE; do
    create_service_database "$service"
done
