// HikariLookup: the HikariCP baseline of scripts/bench. The lookup of pool_throughput (one
// patient by id, a random id among the patients there are) through HikariCP 2.7 over MariaDB
// Connector/J 2.7 (Debian libhikaricp-java, libmariadb-java), the way a Java service does it:
// borrow a connection, prepareStatement (server-side, cached per connection:
// useServerPrepStmts=true, cachePrepStmts=true), read every column, close both. A pool of 16,
// 1 / 4 / 16 / 64 threads, a fixed time per thread count after a JIT warm-up.
//
// The server comes from CLOUDMYSQL_URL (mysql://USER:PASSWORD@HOST[:PORT]/DB?ssl-mode=...&
// ssl-ca=FILE), the same URL the C++ programs read; its TLS options map to Connector/J's:
// VERIFY_IDENTITY checks chain and host name, VERIFY_CA the chain only, REQUIRED neither. The
// patients must be there already (pool_throughput loads them). The password is never printed.
//
// Prints one line per thread count, for scripts/bench to read:
//   hikaricp threads=4 queries_per_second=16170.2 lookups=48511 seconds=3.00
// Usage: java -cp CLASSPATH HikariLookup [--seconds S] [--warmup S] [--threads 1,4,16,64]
//                                       [--database NAME]
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

public final class HikariLookup {
    static final String LOOKUP_SQL =
        "SELECT id, first_name, last_name, date_of_birth, gender, contact_number FROM patients "
        + "WHERE id = ?";
    static final int POOL_SIZE = 16;

    /** The parts of a cloudmysql URL this program needs. */
    static final class Server {
        String user = "";
        String password = "";
        String host = "";
        int port = 3306;
        String database = "";
        Map<String, String> params = new HashMap<>();
    }

    static String decode(String s) {
        return URLDecoder.decode(s.replace("+", "%2B"), StandardCharsets.UTF_8);
    }

    // The URL grammar of connect_options::from_url, enough of it for a benchmark: no sockets.
    // Messages never quote what comes before the last '@' (user name and password).
    static Server parseUrl(String url) {
        final int scheme = url.indexOf("://");
        if (scheme < 0 || !(url.startsWith("mysql://") || url.startsWith("mariadb://")))
            throw new IllegalArgumentException("CLOUDMYSQL_URL must start with mysql://");
        String rest = url.substring(scheme + 3);
        final Server s = new Server();
        final int at = rest.lastIndexOf('@');
        if (at >= 0) {
            final String userinfo = rest.substring(0, at);
            final int colon = userinfo.indexOf(':');
            s.user = decode(colon < 0 ? userinfo : userinfo.substring(0, colon));
            s.password = colon < 0 ? "" : decode(userinfo.substring(colon + 1));
            rest = rest.substring(at + 1);
        }
        final int q = rest.indexOf('?');
        if (q >= 0) {
            for (String kv : rest.substring(q + 1).split("&")) {
                final int eq = kv.indexOf('=');
                if (eq > 0)
                    s.params.put(kv.substring(0, eq).toLowerCase(), decode(kv.substring(eq + 1)));
            }
            rest = rest.substring(0, q);
        }
        final int slash = rest.indexOf('/');
        if (slash >= 0) {
            s.database = decode(rest.substring(slash + 1));
            rest = rest.substring(0, slash);
        }
        if (s.params.containsKey("socket"))
            throw new IllegalArgumentException("this program connects over TCP only, not "
                                               + "through socket=");
        final int portColon = rest.lastIndexOf(':');
        if (portColon >= 0 && rest.indexOf(']') < portColon) {
            s.port = Integer.parseInt(rest.substring(portColon + 1));
            rest = rest.substring(0, portColon);
        }
        s.host = rest;
        if (s.host.isEmpty() || s.database.isEmpty())
            throw new IllegalArgumentException("CLOUDMYSQL_URL needs a host and a database");
        return s;
    }

    static boolean isLoopback(String host) {
        return host.equals("localhost") || host.startsWith("127.") || host.equals("[::1]");
    }

    // The URL's ssl-mode, else cloudmysql's default: VERIFY_IDENTITY for a remote host,
    // PREFERRED (here: no TLS) on loopback.
    static String tlsMode(Server s) {
        return s.params.getOrDefault("ssl-mode", isLoopback(s.host) ? "PREFERRED" : "VERIFY_IDENTITY")
            .toUpperCase();
    }

    // The JDBC URL (no credentials in it) with Connector/J 2.7's TLS options for the mode.
    static String jdbcUrl(Server s) {
        final String mode = tlsMode(s);
        final String ca = s.params.getOrDefault("ssl-ca", "");
        final StringBuilder url = new StringBuilder();
        url.append("jdbc:mariadb://").append(s.host).append(':').append(s.port).append('/')
            .append(s.database)
            .append("?useServerPrepStmts=true&cachePrepStmts=true&prepStmtCacheSize=250")
            .append("&connectTimeout=").append(
                1000 * Integer.parseInt(s.params.getOrDefault("connect-timeout", "3")));
        switch (mode) {
        case "DISABLED":
        case "PREFERRED":
            break;
        case "REQUIRED":
            url.append("&useSsl=true&trustServerCertificate=true");
            break;
        case "VERIFY_CA":
        case "VERIFY_IDENTITY":
            url.append("&useSsl=true");
            if (!ca.isEmpty())
                url.append("&serverSslCert=").append(ca);
            if (mode.equals("VERIFY_CA"))
                url.append("&disableSslHostnameVerification=true");
            break;
        default:
            throw new IllegalArgumentException("unknown ssl-mode " + mode);
        }
        return url.toString();
    }

    /** One worker's tally; each thread writes only its own. */
    static final class Worker extends Thread {
        final HikariDataSource pool;
        final long minId;
        final long maxId;
        volatile boolean counting = false;
        volatile boolean stop = false;
        long lookups = 0;
        long found = 0; // lookups (counted or not) that returned their patient
        Throwable error = null;

        Worker(HikariDataSource pool, long minId, long maxId) {
            this.pool = pool;
            this.minId = minId;
            this.maxId = maxId;
        }

        @Override
        public void run() {
            final ThreadLocalRandom random = ThreadLocalRandom.current();
            long sink = 0;
            try {
                while (!stop) {
                    final long id = random.nextLong(minId, maxId + 1);
                    try (Connection c = pool.getConnection();
                         PreparedStatement ps = c.prepareStatement(LOOKUP_SQL)) {
                        ps.setLong(1, id);
                        try (ResultSet rs = ps.executeQuery()) {
                            while (rs.next()) {
                                if (rs.getLong(1) == id)
                                    ++found;
                                sink += rs.getInt(1);
                                sink += rs.getString(2).length() + rs.getString(3).length();
                                sink += rs.getDate(4).getTime();
                                sink += rs.getString(5).length();
                                final String contact = rs.getString(6);
                                sink += contact == null ? 0 : contact.length();
                            }
                        }
                    }
                    if (counting)
                        ++lookups;
                }
            } catch (Throwable e) {
                error = e;
            }
            if (sink == 42)
                System.err.print(""); // keeps the reads from being optimised away
        }
    }

    // Runs `threads` workers for warmup + seconds; returns the lookups counted in `seconds`.
    static long measure(HikariDataSource pool, long minId, long maxId, int threads,
                        double warmup, double seconds) throws Exception {
        final List<Worker> workers = new ArrayList<>();
        for (int i = 0; i < threads; ++i)
            workers.add(new Worker(pool, minId, maxId));
        for (Worker w : workers)
            w.start();
        Thread.sleep((long) (warmup * 1000));
        for (Worker w : workers)
            w.counting = true;
        Thread.sleep((long) (seconds * 1000));
        for (Worker w : workers)
            w.counting = false;
        long total = 0;
        long found = 0;
        for (Worker w : workers) {
            w.stop = true;
        }
        for (Worker w : workers) {
            w.join();
            if (w.error != null)
                throw new RuntimeException("a lookup failed: " + w.error, w.error);
            total += w.lookups;
            found += w.found;
        }
        // The ids lie between the first and the last patient: lookups that found none read
        // nothing, whatever their speed.
        if (total > 0 && found == 0)
            throw new IllegalStateException("the lookups found no patient: check the patients "
                                            + "table");
        return total;
    }

    static void usage(String problem) {
        System.err.println("HikariLookup: " + problem);
        System.err.println("usage: java -cp CLASSPATH HikariLookup [--seconds S] [--warmup S] "
                           + "[--threads 1,4,16,64] [--database NAME]");
        System.err.println("  The server comes from CLOUDMYSQL_URL "
                           + "(mysql://USER:PASSWORD@HOST[:PORT]/DB?ssl-mode=...&ssl-ca=FILE);");
        System.err.println("  --database replaces its database. Each thread count runs for "
                           + "--warmup (default 0.5) then --seconds (default 3).");
        System.exit(2);
    }

    public static void main(String[] args) throws Exception {
        double seconds = 3;
        double warmup = 0.5;
        int[] threadCounts = {1, 4, 16, 64};
        String database = null;
        for (int i = 0; i < args.length; ++i) {
            if (i + 1 >= args.length)
                usage(args[i] + " needs a value");
            try {
                switch (args[i]) {
                case "--seconds" -> seconds = Double.parseDouble(args[++i]);
                case "--warmup" -> warmup = Double.parseDouble(args[++i]);
                case "--database" -> database = args[++i];
                case "--threads" -> {
                    final String[] parts = args[++i].split(",");
                    threadCounts = new int[parts.length];
                    for (int k = 0; k < parts.length; ++k)
                        threadCounts[k] = Integer.parseInt(parts[k]);
                }
                default -> usage("unknown argument " + args[i]);
                }
            } catch (NumberFormatException e) {
                usage("not a number after " + args[i - 1]);
            }
        }
        if (!(seconds > 0) || !(warmup >= 0))
            usage("--seconds must be above 0 and --warmup at least 0");
        for (int threads : threadCounts)
            if (threads < 1 || threads > 1024)
                usage("--threads takes counts from 1 to 1024, separated by commas");
        final String url = System.getenv("CLOUDMYSQL_URL");
        if (url == null || url.isEmpty())
            usage("no server: set CLOUDMYSQL_URL");
        final Server server;
        try {
            server = parseUrl(url);
        } catch (IllegalArgumentException e) {
            usage(e.getMessage());
            return;
        }
        if (database != null)
            server.database = database;

        final HikariConfig config = new HikariConfig();
        config.setJdbcUrl(jdbcUrl(server));
        config.setUsername(server.user);
        config.setPassword(server.password);
        config.setMaximumPoolSize(POOL_SIZE);
        config.setMinimumIdle(POOL_SIZE);
        config.setPoolName("HikariLookup");
        try (HikariDataSource pool = new HikariDataSource(config)) {
            long minId;
            long maxId;
            try (Connection c = pool.getConnection(); Statement st = c.createStatement()) {
                final boolean tlsRequired = !tlsMode(server).matches("DISABLED|PREFERRED");
                String cipher = "";
                try (ResultSet rs = st.executeQuery("SHOW SESSION STATUS LIKE 'Ssl_cipher'")) {
                    if (rs.next())
                        cipher = rs.getString(2);
                }
                if (tlsRequired && (cipher == null || cipher.isEmpty()))
                    throw new IllegalStateException("TLS required but the session is not "
                                                    + "encrypted");
                try (ResultSet rs = st.executeQuery("SELECT MIN(id), MAX(id) FROM patients")) {
                    rs.next();
                    minId = rs.getLong(1);
                    maxId = rs.getLong(2);
                    if (rs.wasNull())
                        throw new IllegalStateException("no patients in " + server.database
                                                        + ": run pool_throughput first, it "
                                                        + "loads them");
                }
                System.out.printf("hikaricp versions: Java %s, %s %s, TLS cipher %s%n",
                                  System.getProperty("java.version"),
                                  c.getMetaData().getDriverName(),
                                  c.getMetaData().getDriverVersion(),
                                  cipher.isEmpty() ? "none" : cipher);
            }
            // The JIT compiles the hot path first, so that the first cell is not the slowest.
            measure(pool, minId, maxId, 4, Math.min(2.0, 4 * warmup), 0.1);
            for (int threads : threadCounts) {
                final long n = measure(pool, minId, maxId, threads, warmup, seconds);
                System.out.printf("hikaricp threads=%d queries_per_second=%.1f lookups=%d "
                                  + "seconds=%.2f%n",
                                  threads, n / seconds, n, seconds);
            }
        } catch (SQLException | RuntimeException e) {
            // HikariCP's and Connector/J's messages; the JDBC URL holds no credentials.
            String why = e.getMessage();
            if (e.getCause() != null && e.getCause() != e)
                why += ": " + e.getCause().getMessage();
            if (e instanceof SQLException sql)
                why += " (SQLSTATE " + sql.getSQLState() + ", error " + sql.getErrorCode() + ")";
            System.err.println("HikariLookup: " + why);
            System.err.println("HikariLookup: check that the server runs and CLOUDMYSQL_URL "
                               + "names it, its database and its CA file");
            System.exit(1);
        }
    }
}
