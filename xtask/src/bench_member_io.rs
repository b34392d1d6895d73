//! `cargo xtask bench-member-io`: the member import and export targets of issue 6,
//! measured against the release server on PostgreSQL + Redis.
//!
//! - **Import**: CSV files of 10,000 and 40,000 valid rows, each uploaded for a real run
//!   into a fresh org, timed from the start of the upload to the job's `succeeded`
//!   (10,000 rows: ≤ 15 s), with the server's peak RSS growth meanwhile; all rows must be
//!   applied (each row becomes an invitation of the org).
//! - **Export**: orgs of 10,000 and 100,000 members (bulk-inserted with the directory's
//!   search and sort columns), each exported as CSV through the API: the background job,
//!   then the download, streamed and parsed as it arrives; every member must come back.
//! - **Memory**: the peak RSS growth of the larger run may exceed the smaller run's by at
//!   most [`ALLOWANCE_MIB`] (see there).
//!
//! Each measured run gets a freshly started server, an untimed warm-up of the same
//! operation on a small org, then a reset of the peak (`echo 5 > /proc/<pid>/clear_refs`)
//! just before it starts. Needs `TEST_DATABASE_URL` (a role that may create databases)
//! and `TEST_REDIS_URL` (defaults: the local services).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use persistence::{Database, DatabaseSettings};
use sea_orm::{ConnectionTrait, Statement};
use tenancy::Child;

use crate::bench::proc_status_kib;
use crate::bench_http::{
    BenchDatabase, ScratchDir, Server, create_org, expect, http, machine, read_response,
    release_server, request_head, service_urls, sign_up,
};
use crate::seed::bench_rows::{BenchMember, MEMBERSHIP_COLUMNS, membership_row, user_row};
use crate::seed::bulk::{BulkInsert, thousands};
use crate::seed::rng::SplitMix64;
use crate::seed::{COMMITTEES, FIRST_NAMES, GRADE_BANDS, LAST_NAMES, USER_COLUMNS};

/// Import sizes (rows), smaller first.
const IMPORT_ROWS: [usize; 2] = [10_000, 40_000];
/// Export sizes (members of the org, its admin included), smaller first.
const EXPORT_MEMBERS: [usize; 2] = [10_000, 100_000];
/// Rows of the untimed warm-up import (its org is also the warm-up export).
const WARM_UP_ROWS: usize = 500;
/// Issue 6: a 10,000-row import, end to end.
const IMPORT_TARGET_SECS: f64 = 15.0;
/// How much more the larger run's peak RSS growth may be than the smaller run's.
///
/// Constant memory means the same growth whatever the size; the allowance covers
/// allocator and driver noise. It is small against what scaling would cost: the 30,000
/// extra import rows fail it if the server keeps ≥ 280 bytes per row (a parsed row is
/// several times that), the 90,000 extra export rows if it keeps ≥ 93 bytes per row (a
/// CSV row is ~150).
const ALLOWANCE_MIB: u64 = 8;
/// Between two reads of a job's status.
const POLL: Duration = Duration::from_millis(50);
/// A job that has not ended by then failed the benchmark.
const JOB_DEADLINE: Duration = Duration::from_secs(900);
/// Seed of the generated people.
const SEED: u64 = 6;

/// A generated member.
struct Person {
    email: String,
    first: &'static str,
    last: String,
    phone: String,
    role: &'static str,
    committee: Option<&'static str>,
    children: Vec<Child>,
}

/// Person `i` of the set `set` (a distinct e-mail and full name for every `(set, i)`).
fn person(set: &str, i: usize) -> Person {
    const CONSONANTS: &[u8] = b"bdfgklmnprstvz";
    const VOWELS: &[u8] = b"aeiou";
    let mut rng = SplitMix64::stream(SEED, 1, i as u64);
    // A made-up surname suffix spelling `i` in consonant-vowel syllables: unique per `i`.
    let mut suffix = String::new();
    let mut n = i;
    // Three syllables: 343,000 distinct suffixes.
    for _ in 0..3 {
        let syllable = n % (CONSONANTS.len() * VOWELS.len());
        n /= CONSONANTS.len() * VOWELS.len();
        suffix.push(char::from(CONSONANTS[syllable / VOWELS.len()]));
        suffix.push(char::from(VOWELS[syllable % VOWELS.len()]));
    }
    let suffix = suffix[..1].to_uppercase() + &suffix[1..];
    let role = match rng.below(100) {
        0..80 => "volunteer",
        80..92 => "committee_lead",
        _ => "board_member",
    };
    let committee = (role == "committee_lead" || rng.percent(20.0)).then(|| *rng.pick(&COMMITTEES));
    let band = *rng.pick(&GRADE_BANDS);
    let children = (0..rng.below(4))
        .map(|_| Child {
            name: (*rng.pick(&FIRST_NAMES)).to_owned(),
            grade: Some((*rng.pick(band)).to_owned()),
        })
        .collect();
    Person {
        email: format!("{set}.{i}@bench.example"),
        first: FIRST_NAMES[rng.index(FIRST_NAMES.len())],
        last: format!("{}-{suffix}", rng.pick(&LAST_NAMES)),
        phone: format!("+1 555 {:04}", i % 10_000),
        role,
        committee,
        children,
    }
}

/// Writes a CSV of `rows` people of `set` in the importer's columns; returns its size.
fn write_csv(path: &Path, set: &str, rows: usize) -> anyhow::Result<u64> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut line = String::new();
    jobs::table::push_csv_line(
        &mut line,
        &[
            "email",
            "first_name",
            "last_name",
            "role",
            "phone",
            "committee",
            "children",
        ],
    );
    for i in 0..rows {
        let p = person(set, i);
        jobs::table::push_csv_line(
            &mut line,
            &[
                p.email.as_str(),
                p.first,
                &p.last,
                p.role,
                &p.phone,
                p.committee.unwrap_or_default(),
                &jobs::table::children_cell(&p.children),
            ],
        );
        out.write_all(line.as_bytes())?;
        line.clear();
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Bulk-inserts `count` new users of `set` as active members of `org` (without phone
/// or committee), with the search document and sort columns the add-member path writes.
async fn seed_members(
    db: &Database,
    org: uuid::Uuid,
    set: &str,
    count: usize,
) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let ids: Vec<uuid::Uuid> = (0..count).map(|_| uuid::Uuid::now_v7()).collect();
    let txn = sea_orm::TransactionTrait::begin(db.primary()).await?;
    let mut users = BulkInsert::new(&txn, "users", &USER_COLUMNS, 2_000, count as u64);
    for (i, id) in ids.iter().enumerate() {
        let p = person(set, i);
        users
            .push(user_row(*id, &p.email, p.first, &p.last, now))
            .await?;
    }
    users.finish().await?;
    let mut members = BulkInsert::new(
        &txn,
        "memberships",
        &MEMBERSHIP_COLUMNS,
        2_000,
        count as u64,
    );
    for (i, id) in ids.iter().enumerate() {
        let p = person(set, i);
        let children: Vec<String> = p.children.iter().map(|c| c.name.clone()).collect();
        let profile = if p.children.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::json!({ "children": p.children })
        };
        let member = BenchMember {
            org,
            user: *id,
            role: p.role,
            status: "active",
            first: p.first,
            last: &p.last,
            email: &p.email,
            committee: None,
            children: &children,
            profile,
            joined: now - time::Duration::minutes(i64::try_from(i)?),
        };
        members.push(membership_row(member, now)).await?;
    }
    members.finish().await?;
    txn.commit().await?;
    Ok(())
}

/// Invitations of `org` (what an import creates), counted in the database.
async fn invitation_count(db: &Database, org: &str) -> anyhow::Result<i64> {
    let row = db
        .primary()
        .query_one_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT count(*) FROM invitations WHERE org_id = $1",
            [uuid::Uuid::parse_str(org)?.into()],
        ))
        .await?
        .context("no count")?;
    Ok(row.try_get_by_index(0)?)
}

/// Uploads `file` to the import route (a real run); returns the job.
fn upload(
    addr: SocketAddr,
    token: &str,
    org: &str,
    file: &Path,
) -> anyhow::Result<serde_json::Value> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    let len = std::fs::metadata(file)?.len();
    let head = request_head(
        addr,
        "POST",
        &format!("/api/v2/orgs/{org}/users/import"),
        Some(token),
        Some(("text/csv", len)),
    );
    stream.write_all(head.as_bytes())?;
    std::io::copy(&mut std::fs::File::open(file)?, &mut stream)?;
    expect("import upload", 202, read_response(&mut stream))
}

/// Polls a job until it has succeeded (an error if it ends otherwise or takes longer
/// than [`JOB_DEADLINE`]); returns its last view.
fn wait_for_job(
    addr: SocketAddr,
    token: &str,
    job: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let url = job["data"]["status_url"].as_str().context("status url")?;
    let deadline = Instant::now() + JOB_DEADLINE;
    loop {
        let body = expect("job status", 200, http(addr, "GET", url, Some(token), None))?;
        match body["data"]["status"].as_str() {
            Some("succeeded") => return Ok(body),
            // Any other state (failed, or one added later, e.g. cancelled) has ended.
            Some("queued" | "running") => {}
            _ => bail!("the job ended without succeeding: {body}"),
        }
        if Instant::now() > deadline {
            bail!("the job did not finish within {JOB_DEADLINE:?}: {body}");
        }
        std::thread::sleep(POLL);
    }
}

/// A reader that counts the bytes it passes on.
struct Counted<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The body of a `Transfer-Encoding: chunked` response, decoded as it is read.
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            self.inner.read_line(&mut line)?;
            let size = line.trim_end().split(';').next().unwrap_or_default();
            self.left = u64::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
            if self.left == 0 {
                // The trailer section ends with an empty line.
                loop {
                    line.clear();
                    if self.inner.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(bad("the body ended inside a chunk"));
        }
        self.left -= n as u64;
        if self.left == 0 {
            let mut crlf = [0; 2];
            self.inner.read_exact(&mut crlf)?;
        }
        Ok(n)
    }
}

/// Downloads a CSV export and parses it as it arrives (one record in memory at a time):
/// the body's bytes and its data rows. Fails if the header is not the export's or a
/// row has the wrong number of fields.
fn download_csv(addr: SocketAddr, token: &str, path: &str) -> anyhow::Result<(u64, u64)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    stream.write_all(request_head(addr, "GET", path, Some(token), None).as_bytes())?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line.split(' ').nth(1).unwrap_or_default().to_owned();
    let (mut chunked, mut length, mut gzip) = (false, None, false);
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "transfer-encoding" => chunked = value.trim().eq_ignore_ascii_case("chunked"),
                "content-length" => length = value.trim().parse::<u64>().ok(),
                "content-encoding" => gzip = value.trim().eq_ignore_ascii_case("gzip"),
                _ => {}
            }
        }
    }
    if status != "200" {
        bail!("download {path}: status {status}");
    }
    let body: Box<dyn Read> = if chunked {
        Box::new(Chunked {
            inner: reader,
            left: 0,
            done: false,
        })
    } else {
        Box::new(reader.take(length.unwrap_or(u64::MAX)))
    };
    // Asked with `Accept-Encoding: gzip, br` (as browsers ask); the CSV is counted and
    // parsed decompressed.
    let body: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(body))
    } else {
        body
    };
    let mut body = Counted {
        inner: body,
        bytes: 0,
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(&mut body);
    if csv.headers()?.iter().ne(jobs::table::COLUMNS) {
        bail!("the export's header is {:?}", csv.headers()?);
    }
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    while csv.read_record(&mut record)? {
        if record.len() != jobs::table::COLUMNS.len() {
            bail!("row {} has {} fields", rows + 2, record.len());
        }
        rows += 1;
    }
    drop(csv);
    Ok((body.bytes, rows))
}

/// The server's memory around one measured operation.
struct Memory {
    pid: String,
    before_kib: u64,
}

impl Memory {
    /// Resets the server's peak RSS to its current RSS and notes the latter.
    fn reset(server: &Server) -> anyhow::Result<Self> {
        let pid = server.pid().to_string();
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
            .context("reset the server's peak RSS (/proc/<pid>/clear_refs; needs root)")?;
        let before_kib = proc_status_kib(&pid, "VmRSS:");
        Ok(Self { pid, before_kib })
    }

    /// The peak RSS since the reset, minus the RSS at the reset.
    fn growth_kib(&self) -> u64 {
        proc_status_kib(&self.pid, "VmHWM:").saturating_sub(self.before_kib)
    }
}

#[allow(clippy::cast_precision_loss, reason = "display only")]
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct ImportRun {
    rows: usize,
    file_bytes: u64,
    accepted: Duration,
    total: Duration,
    rss_before_kib: u64,
    growth_kib: u64,
}

struct ExportRun {
    members: usize,
    rows: u64,
    bytes: u64,
    job: Duration,
    download: Duration,
    rss_before_kib: u64,
    job_growth_kib: u64,
    download_growth_kib: u64,
}

/// What every run needs: where things are, the admin's token, the checking connection.
struct Bench<'a> {
    bin: &'a Path,
    db_url: &'a str,
    redis_url: &'a str,
    dir: &'a Path,
    token: String,
    db: Database,
    rt: tokio::runtime::Runtime,
}

impl Bench<'_> {
    fn server(&self) -> anyhow::Result<Server> {
        Server::start(self.bin, self.db_url, self.redis_url, self.dir)
    }

    /// Imports `file` into `org` and waits for the job; returns the upload's answer
    /// time and the job's last view.
    fn import(
        &self,
        server: &Server,
        org: &str,
        file: &Path,
    ) -> anyhow::Result<(Duration, serde_json::Value)> {
        let started = Instant::now();
        let job = upload(server.addr, &self.token, org, file)?;
        let accepted = started.elapsed();
        Ok((accepted, wait_for_job(server.addr, &self.token, &job)?))
    }

    /// Exports `org` as CSV through a job and waits for it; returns the job's last view.
    fn export_job(&self, server: &Server, org: &str) -> anyhow::Result<serde_json::Value> {
        let job = expect(
            "export",
            202,
            http(
                server.addr,
                "GET",
                &format!("/api/v2/orgs/{org}/users/export?format=csv&async=true"),
                Some(&self.token),
                None,
            ),
        )?;
        wait_for_job(server.addr, &self.token, &job)
    }

    /// One measured import of `rows` rows into `org`, in a fresh server, after a
    /// warm-up import of new people into `warm_org`.
    fn measure_import(&self, warm_org: &str, org: &str, rows: usize) -> anyhow::Result<ImportRun> {
        let warm_file = self.dir.join(format!("warm-up-{rows}.csv"));
        write_csv(&warm_file, &format!("warm{rows}"), WARM_UP_ROWS)?;
        let file = self.dir.join(format!("import-{rows}.csv"));
        let file_bytes = write_csv(&file, &format!("imp{rows}"), rows)?;
        let server = self.server()?;
        self.import(&server, warm_org, &warm_file)?;
        let memory = Memory::reset(&server)?;
        let started = Instant::now();
        let (accepted, job) = self.import(&server, org, &file)?;
        let total = started.elapsed();
        let growth_kib = memory.growth_kib();
        drop(server);
        let d = &job["data"];
        if d["succeeded_rows"].as_u64() != Some(rows as u64) || d["failed_rows"].as_u64() != Some(0)
        {
            bail!("the {rows}-row import did not apply every row: {job}");
        }
        let invited = self.rt.block_on(invitation_count(&self.db, org))?;
        if invited != i64::try_from(rows)? {
            bail!("the {rows}-row import made {invited} invitations, not {rows}");
        }
        Ok(ImportRun {
            rows,
            file_bytes,
            accepted,
            total,
            rss_before_kib: memory.before_kib,
            growth_kib,
        })
    }

    /// One measured CSV export of `org` (job, then download), in a fresh server, after a
    /// warm-up export of `warm_org`.
    fn measure_export(
        &self,
        warm_org: &str,
        org: &str,
        members: usize,
    ) -> anyhow::Result<ExportRun> {
        let server = self.server()?;
        let warm = self.export_job(&server, warm_org)?;
        download_csv(
            server.addr,
            &self.token,
            warm["data"]["download_url"]
                .as_str()
                .context("download url")?,
        )?;
        let memory = Memory::reset(&server)?;
        let started = Instant::now();
        let job = self.export_job(&server, org)?;
        let job_time = started.elapsed();
        let job_growth_kib = memory.growth_kib();
        let download_memory = Memory::reset(&server)?;
        let started = Instant::now();
        let url = job["data"]["download_url"]
            .as_str()
            .context("download url")?;
        let (bytes, rows) = download_csv(server.addr, &self.token, url)?;
        let download = started.elapsed();
        let download_growth_kib = download_memory.growth_kib();
        drop(server);
        if rows != members as u64 || job["data"]["total_rows"].as_u64() != Some(rows) {
            bail!("the export of {members} members downloaded {rows} rows: {job}");
        }
        Ok(ExportRun {
            members,
            rows,
            bytes,
            job: job_time,
            download,
            rss_before_kib: memory.before_kib,
            job_growth_kib,
            download_growth_kib,
        })
    }
}

/// Runs the measurements and prints a Markdown report; fails if a target is missed.
pub fn run() -> anyhow::Result<()> {
    let (admin_url, redis_url) = service_urls();
    let bin = release_server()?;
    let db = BenchDatabase::create(&admin_url, "ptoc_bench_io")?;
    let dir = ScratchDir::create("ptoc-bench-io")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let machine = machine();
    let server = Server::start(&bin, &db.url, &redis_url, &dir.0)?;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let (_, token) = sign_up(server.addr, &format!("io-admin-{run}@bench.example"))?;
    let code = |name: &str| format!("IO{name}{}", &run[run.len() - 8..]).to_uppercase();
    let org = |name: String, code: String| create_org(server.addr, &token, &name, &code);
    let warm_org = org("IO warm-up PTO".into(), code("WARM"))?;
    let import_orgs = IMPORT_ROWS
        .iter()
        .map(|n| org(format!("IO import {n}"), code(&format!("I{n}"))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let export_orgs = EXPORT_MEMBERS
        .iter()
        .map(|n| org(format!("IO export {n}"), code(&format!("E{n}"))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    drop(server);
    let checker = rt.block_on(Database::connect(&DatabaseSettings {
        url: db.url.clone(),
        read_url: None,
        max_connections: 2,
        acquire_timeout: Duration::from_secs(10),
        busy_timeout: Duration::from_secs(5),
    }))?;
    let bench = Bench {
        bin: &bin,
        db_url: &db.url,
        redis_url: &redis_url,
        dir: &dir.0,
        token,
        db: checker,
        rt,
    };

    let mut imports = Vec::new();
    for (rows, org) in IMPORT_ROWS.iter().zip(&import_orgs) {
        println!(
            "bench-member-io: importing {} rows",
            thousands(*rows as u64)
        );
        imports.push(bench.measure_import(&warm_org, org, *rows)?);
    }
    let mut exports = Vec::new();
    for (members, org) in EXPORT_MEMBERS.iter().zip(&export_orgs) {
        println!(
            "bench-member-io: seeding an org of {} members, then exporting it",
            thousands(*members as u64)
        );
        let org_id = uuid::Uuid::parse_str(org)?;
        bench.rt.block_on(async {
            seed_members(&bench.db, org_id, &format!("exp{members}"), members - 1).await?;
            bench.db.primary().execute_unprepared("ANALYZE").await?;
            anyhow::Ok(())
        })?;
        exports.push(bench.measure_export(&warm_org, org, *members)?);
    }
    bench.rt.block_on(bench.db.clone().close()).ok();
    report(&machine, &imports, &exports)
}

fn report(machine: &str, imports: &[ImportRun], exports: &[ExportRun]) -> anyhow::Result<()> {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\n## Member import and export: time and memory (issue 6)\n");
    println!(
        "Run: `cargo xtask bench-member-io` (release server on PostgreSQL + Redis; each run in a fresh server process after an untimed warm-up of its kind: a {WARM_UP_ROWS}-row import, or the export of the warm-up org). Recorded {}.\n",
        time::OffsetDateTime::now_utc()
    );
    println!(
        "Machine: {machine}; after: {}.\n",
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    println!(
        "| import (real run) | CSV size | upload answered (202) | upload → job succeeded | rows/s | server RSS before | peak RSS growth |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for r in imports {
        println!(
            "| {} rows, all applied | {:.1} MiB | {:.2} s | {:.2} s | {} | {:.0} MiB | {:.1} MiB |",
            thousands(r.rows as u64),
            mib(r.file_bytes / 1024),
            r.accepted.as_secs_f64(),
            r.total.as_secs_f64(),
            thousands((r.rows as f64 / r.total.as_secs_f64()) as u64),
            mib(r.rss_before_kib),
            mib(r.growth_kib)
        );
    }
    println!(
        "\n| CSV export (job, then download) | rows downloaded | CSV size | job | download | server RSS before | peak RSS growth: job / download |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for e in exports {
        println!(
            "| org of {} members | {} | {:.1} MiB | {:.2} s | {:.2} s | {:.0} MiB | {:.1} / {:.1} MiB |",
            thousands(e.members as u64),
            thousands(e.rows),
            mib(e.bytes / 1024),
            e.job.as_secs_f64(),
            e.download.as_secs_f64(),
            mib(e.rss_before_kib),
            mib(e.job_growth_kib),
            mib(e.download_growth_kib)
        );
    }
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    let mut missed = false;
    println!("\nTargets:");
    if let Some(r) = imports.iter().find(|r| r.rows == 10_000) {
        let ok = r.total.as_secs_f64() <= IMPORT_TARGET_SECS;
        missed |= !ok;
        println!(
            "- 10,000-row import, upload → all rows applied ≤ {IMPORT_TARGET_SECS} s: {} ({:.2} s)",
            verdict(ok),
            r.total.as_secs_f64()
        );
    }
    // Constant memory: the larger run's peak growth within the allowance of the smaller's.
    let mut memory = |what: &str, (small, s): (usize, u64), (large, l): (usize, u64)| {
        let ok = l <= s + ALLOWANCE_MIB * 1024;
        missed |= !ok;
        println!(
            "- {what}: growth({}) ≤ growth({}) + {ALLOWANCE_MIB} MiB: {} ({:.1} vs {:.1} MiB)",
            thousands(large as u64),
            thousands(small as u64),
            verdict(ok),
            mib(l),
            mib(s)
        );
    };
    if let (Some(s), Some(l)) = (imports.first(), imports.last()) {
        memory(
            "import memory does not grow with the file",
            (s.rows, s.growth_kib),
            (l.rows, l.growth_kib),
        );
    }
    if let (Some(s), Some(l)) = (exports.first(), exports.last()) {
        memory(
            "export memory (job) does not grow with the member count",
            (s.members, s.job_growth_kib),
            (l.members, l.job_growth_kib),
        );
        memory(
            "export memory (download) does not grow with the member count",
            (s.members, s.download_growth_kib),
            (l.members, l.download_growth_kib),
        );
    }
    println!(
        "- every row applied (imports) and every member downloaded (exports): PASS (checked above)"
    );
    if missed {
        bail!("a target was missed (see the list)");
    }
    Ok(())
}
