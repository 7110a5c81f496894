// Healthcheck of a mongo container: turn the single mongod into a one-member replica
// set on first run (multi-document transactions need one), then report healthy only
// once it is the writable primary. Safe to run again and again. The member's address
// is the container's REPLICA_HOST (docker-compose.yml: each service's own store,
// mongo-itl:27017, mongo-kz:27017, ...), reachable from the services' network.
try {
  rs.status();
} catch (e) {
  const host = process.env.REPLICA_HOST || "mongo:27017";
  rs.initiate({ _id: "rs0", members: [{ _id: 0, host: host }] });
}
quit(db.hello().isWritablePrimary ? 0 : 1);
