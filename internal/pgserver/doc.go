// Package pgserver runs PostgreSQL tools and servers as a data directory's
// owner and edits the server's configuration files. Restore, the scratch
// clusters and restore drills share it, so that there is one way to switch
// users, one environment for the server, one reader of postmaster.pid and
// one parser of postgresql.conf.
//
// PostgreSQL refuses to run as root. When we are root, tools and servers
// run as an Owner: the data directory's owner (OwnerOf) or a named system
// user (LookupUser). Otherwise they run as ourselves.
package pgserver
