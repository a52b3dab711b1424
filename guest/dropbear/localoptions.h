/* Nimbus guest build of dropbear (guest/build-dropbear.sh copies this into the
 * build tree). Only what differs from Debian's default_options.h. */

/* Public-key logins only: no password authentication at all (and so no crypt(),
 * no libcrypt in the static binary). */
#define DROPBEAR_SVR_PASSWORD_AUTH 0
#define DROPBEAR_CLI_PASSWORD_AUTH 0

/* There is no sftp-server, X11 or /etc/motd in the images. */
#define DROPBEAR_SFTPSERVER 0
#define DROPBEAR_X11FWD 0
#define DO_MOTD 0

/* /var/run is a link to /run (a tmpfs). */
#define DROPBEAR_PIDFILE "/run/dropbear.pid"
