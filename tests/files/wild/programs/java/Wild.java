// Logs through SLF4J (logback) or Log4j 2 while pgjdbc fails to reach a closed PostgreSQL port.
import java.sql.DriverManager;
import java.sql.SQLException;

public class Wild {
    public static void main(String[] args) throws Exception {
        boolean log4j = args.length > 0 && args[0].equals("log4j2");
        Object log = log4j ? org.apache.logging.log4j.LogManager.getLogger("com.example.orders.OrderRepository")
                           : org.slf4j.LoggerFactory.getLogger("com.example.orders.OrderRepository");
        info(log, "Starting order service on port 8080");
        Thread worker = new Thread(() -> {
            try {
                DriverManager.getConnection("jdbc:postgresql://127.0.0.1:5499/orders?connectTimeout=2", "app", "x");
            } catch (SQLException e) {
                error(log, "Could not open JDBC connection for transaction", e);
            }
        }, "http-nio-8080-exec-1");
        worker.start();
        worker.join();
        warn(log, "Retrying in 5000 ms");
    }
    static void info(Object l, String m) { if (l instanceof org.slf4j.Logger s) s.info(m); else ((org.apache.logging.log4j.Logger) l).info(m); }
    static void warn(Object l, String m) { if (l instanceof org.slf4j.Logger s) s.warn(m); else ((org.apache.logging.log4j.Logger) l).warn(m); }
    static void error(Object l, String m, Throwable t) { if (l instanceof org.slf4j.Logger s) s.error(m, t); else ((org.apache.logging.log4j.Logger) l).error(m, t); }
}
