// Healthcheck of the mongo container: turn the single mongod into a one-member replica
// set on first run (multi-document transactions need one), then report healthy only
// once it is the writable primary. Safe to run again and again.
try {
  rs.status();
} catch (e) {
  rs.initiate({ _id: "rs0", members: [{ _id: 0, host: "mongo:27017" }] });
}
quit(db.hello().isWritablePrimary ? 0 : 1);
