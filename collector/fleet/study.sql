-- SPDX-License-Identifier: MIT
-- The study's figures over the Parquet export (docs/fleet.md), in SQL that DuckDB and Spark SQL both
-- run as it is. The runner (collector/fleet/study.py, collector/fleet/spark.py) first makes the views
-- connections, announcements, events and lost over the dataset, each already cut to the window
-- (--since/--until) by its `time`; each statement below is one figure group, named by its comment.
-- A connection is (host, connection); an address counts once per connection (docs/records.md).

-- figure: totals
SELECT
  (SELECT count(*) FROM (SELECT DISTINCT host, connection FROM connections WHERE established) AS c)
    AS connections,
  (SELECT count(*) FROM connections WHERE NOT established) AS attempts,
  (SELECT count(*) FROM (
     SELECT DISTINCT a.host, a.connection
     FROM announcements AS a JOIN connections AS c ON a.host = c.host AND a.connection = c.connection
     WHERE c.established AND a.announcer = 'client' AND NOT a.echo) AS ac) AS connections_announcing,
  (SELECT count(*) FROM announcements WHERE announcer = 'client' AND NOT echo) AS announcements,
  (SELECT count(*) FROM announcements WHERE announcer = 'client' AND NOT echo AND port IS NOT NULL)
    AS with_port,
  (SELECT count(DISTINCT address) FROM announcements
   WHERE announcer = 'client' AND NOT echo AND connection IS NOT NULL) AS distinct_addresses,
  (SELECT count(*) FROM announcements WHERE announcer = 'server' AND NOT echo) AS server_announcements,
  (SELECT count(*) FROM announcements WHERE NOT echo AND connection IS NULL) AS unattributed,
  (SELECT coalesce(sum(count), 0) FROM lost) AS lost_events;

-- figure: versions
SELECT version, count(*) AS connections
FROM (SELECT host, connection, min_by(version, time) AS version
      FROM connections WHERE established GROUP BY host, connection) AS first_version
GROUP BY version;

-- figure: classes
SELECT announcer, family, class, embedded_ipv4_class, count(*) AS pairs
FROM (SELECT DISTINCT host, connection, address, announcer, family, class, embedded_ipv4_class
      FROM announcements
      WHERE NOT echo AND connection IS NOT NULL AND announcer IS NOT NULL) AS pair
GROUP BY announcer, family, class, embedded_ipv4_class;

-- figure: seen
SELECT min(time) AS first_seen, max(time) AS last_seen
FROM (SELECT time FROM connections
      UNION ALL SELECT time FROM announcements
      UNION ALL SELECT time FROM events) AS traffic;
