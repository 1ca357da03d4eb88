// Synthetic clinic data from a seed, and the bulk loader that stores it.
//
// Determinism: every value comes from splitmix64 and integer arithmetic on days (sys_days),
// never from std:: distributions, whose algorithms differ between standard libraries. The same
// seed gives the same patients and records with any compiler, library or batch size.
#include <cloudmysql/clinic/generator.hpp>

#include <cloudmysql/connection.hpp>
#include <cloudmysql/param.hpp>
#include <cloudmysql/statement.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace cloudmysql::clinic {
namespace {

using namespace std::chrono;

// ---- what the data is made of ------------------------------------------------------------

constexpr std::array<std::string_view, 48> female_names{
    "Olivia",   "Emma",   "Amelia",   "Sophia",     "Isabella", "Mia",       "Charlotte", "Harper",
    "Evelyn",   "Emily",  "Grace",    "Hannah",     "Leah",     "Margaret",  "Dorothy",   "Ruth",
    "Patricia", "Linda",  "Joan",     "Chloé",      "Zoë",      "Renée",     "Élodie",    "Noémie",
    "Siobhán",  "Aoife",  "Maria",    "Lucía",      "Sofía",    "Ana",       "Ingrid",    "Astrid",
    "Birgitta", "Fatima", "Aisha",    "Nadia",      "Priya",    "Ananya",    "Mei",       "Yuki",
    "Hana",     "Amara",  "Chiamaka", "Małgorzata", "Zsófia",   "Agnieszka", "Thị Lan",   "Dagný"};

constexpr std::array<std::string_view, 48> male_names{
    "James",  "John",    "Robert", "Michael", "William", "David",   "Richard",  "Joseph",
    "Thomas", "Charles", "Daniel", "Matthew", "Liam",    "Noah",    "Oliver",   "Elijah",
    "Lucas",  "Mateo",   "José",   "Andrés",  "Raúl",    "Tomás",   "François", "Noël",
    "Jürgen", "Björn",   "Søren",  "Seán",    "Ciarán",  "Oisín",   "Mohammed", "Omar",
    "Ahmed",  "Ibrahim", "Arjun",  "Rahul",   "Wei",     "Hiroshi", "Kenji",    "Chukwuemeka",
    "Kwame",  "Łukasz",  "Jiří",   "Dmitri",  "Mikael",  "Đorđe",   "Gunnar",   "Henrik"};

constexpr std::array<std::string_view, 90> last_names{
    "Smith",        "Johnson",    "Williams",       "Brown",    "Jones",        "Miller",
    "Davis",        "Wilson",     "Anderson",       "Taylor",   "Moore",        "Jackson",
    "Martin",       "Lee",        "Thompson",       "White",    "Harris",       "Clark",
    "Lewis",        "Robinson",   "Walker",         "Young",    "Allen",        "King",
    "Wright",       "Scott",      "Hill",           "Green",    "Adams",        "Baker",
    "Hall",         "Campbell",   "Mitchell",       "Carter",   "Roberts",      "García",
    "Rodríguez",    "Martínez",   "Hernández",      "López",    "Pérez",        "Sánchez",
    "Ramírez",      "Torres",     "Flores",         "Rivera",   "O'Neil",       "O'Brien",
    "O'Connor",     "D'Angelo",   "McDonald",       "MacLeod",  "Müller",       "Schröder",
    "Weiß",         "Kowalski",   "Wiśniewski",     "Novák",    "Dvořák",       "Jensen",
    "Søndergaard",  "Håkansson",  "Öztürk",         "Yılmaz",   "Nguyễn",       "Trần",
    "Kim",          "Park",       "Chen",           "Wang",     "Zhang",        "Tanaka",
    "Suzuki",       "Patel",      "Singh",          "Okafor",   "Mensah",       "Dubois",
    "Lefèvre",      "Côté",       "Rossi",          "Esposito", "Silva",        "Gonçalves",
    "van der Berg", "de la Cruz", "Ó Súilleabháin", "Al-Farsi", "Björnsdóttir", "Ivanović"};

// A diagnosis, the treatments that go with it, who gets it (age in whole years at admission)
// and how long a stay takes (1 to 30 days).
struct condition {
    std::string_view diagnosis;
    int min_age;
    int max_age;
    int min_stay;
    int max_stay;
    std::array<std::string_view, 3> treatments; // empty entries unused
};

constexpr int any_age = 200;

// clang-format off
constexpr std::array<condition, 42> conditions{{
    // diagnosis, ages from and to, stay from and to (days), treatments
    {"Community-acquired pneumonia", 0, any_age, 2, 10,
     {"Amoxicillin 1 g three times daily for 5 days",
      "IV ceftriaxone 2 g daily, then oral step-down"}},
    {"Acute appendicitis", 3, any_age, 1, 5,
     {"Laparoscopic appendectomy",
      "IV antibiotics and observation; interval appendectomy"}},
    {"Type 2 diabetes mellitus, poorly controlled", 25, any_age, 1, 5,
     {"Metformin titrated to 1 g twice daily; dietitian referral",
      "Basal insulin started; glucose self-monitoring education"}},
    {"Essential hypertension, uncontrolled", 25, any_age, 1, 3,
     {"Amlodipine 5 mg daily; home blood pressure monitoring",
      "Ramipril 5 mg daily; low-salt diet advice"}},
    {"Acute asthma exacerbation", 2, any_age, 1, 4,
     {"Nebulised salbutamol; prednisolone 40 mg for 5 days",
      "IV magnesium sulfate; inhaled corticosteroid step-up"}},
    {"COPD exacerbation", 40, any_age, 3, 12,
     {"Nebulised bronchodilators, prednisolone 30 mg and doxycycline",
      "Non-invasive ventilation; pulmonary rehabilitation referral"}},
    {"Non-ST-elevation myocardial infarction", 30, any_age, 3, 8,
     {"Aspirin, ticagrelor and fondaparinux; coronary angiography",
      "PCI with drug-eluting stent; cardiac rehabilitation"}},
    {"Atrial fibrillation with rapid ventricular response", 30, any_age, 1, 5,
     {"Rate control with bisoprolol; apixaban anticoagulation",
      "Electrical cardioversion"}},
    {"Congestive heart failure, decompensated", 40, any_age, 4, 14,
     {"IV furosemide; fluid restriction 1.5 L/day",
      "Optimised ACE inhibitor and beta-blocker; daily weights"}},
    {"Ischaemic stroke", 35, any_age, 7, 30,
     {"Thrombolysis with alteplase; stroke unit care",
      "Aspirin 300 mg; physiotherapy and speech and language therapy"}},
    {"Urinary tract infection", 0, any_age, 1, 3,
     {"Nitrofurantoin 100 mg twice daily for 3 days",
      "Trimethoprim 200 mg twice daily for 7 days"}},
    {"Acute pyelonephritis", 5, any_age, 2, 7,
     {"IV gentamicin, then oral ciprofloxacin for 7 days",
      "IV co-amoxiclav; renal ultrasound"}},
    {"Cellulitis of the lower leg", 5, any_age, 2, 8,
     {"Flucloxacillin 1 g four times daily; limb elevation",
      "IV clindamycin (penicillin allergy); wound care"}},
    {"Fracture of the distal radius", 4, any_age, 1, 3,
     {"Closed reduction and cast immobilisation for 6 weeks",
      "Open reduction and internal fixation (ORIF)"}},
    {"Fracture of the neck of femur", 55, any_age, 7, 25,
     {"Hemiarthroplasty; early mobilisation with physiotherapy",
      "Dynamic hip screw fixation; falls assessment"}},
    {"Concussion after a fall", 2, any_age, 1, 2,
     {"Neurological observations for 24 hours; graded return to activity",
      "CT head (normal); analgesia and head injury advice"}},
    {"Migraine with aura, status migrainosus", 10, 70, 1, 3,
     {"Sumatriptan 6 mg subcutaneously; IV fluids and metoclopramide",
      "Propranolol prophylaxis started; headache diary"}},
    {"Gastroenteritis with dehydration", 0, any_age, 1, 4,
     {"IV fluids and ondansetron",
      "Oral rehydration therapy; stool culture"}},
    {"Acute pancreatitis", 18, any_age, 4, 14,
     {"IV fluids, analgesia and bowel rest; lipase monitoring",
      "ERCP for gallstone obstruction; early enteral feeding"}},
    {"Acute cholecystitis", 18, any_age, 2, 7,
     {"Laparoscopic cholecystectomy",
      "IV co-amoxiclav; elective cholecystectomy in 6 weeks"}},
    {"Upper gastrointestinal bleed from a peptic ulcer", 25, any_age, 3, 9,
     {"Endoscopic haemostasis; IV pantoprazole infusion",
      "Blood transfusion of 2 units; H. pylori eradication therapy"}},
    {"Iron-deficiency anaemia", 12, any_age, 1, 3,
     {"Ferrous sulfate 200 mg daily; colonoscopy to find the source",
      "IV ferric carboxymaltose infusion"}},
    {"Deep vein thrombosis of the left leg", 18, any_age, 1, 4,
     {"Rivaroxaban 15 mg twice daily for 3 weeks, then 20 mg daily",
      "Low-molecular-weight heparin; compression stockings"}},
    {"Pulmonary embolism", 18, any_age, 3, 10,
     {"Low-molecular-weight heparin, then apixaban for 6 months",
      "Catheter-directed thrombolysis; ICU monitoring"}},
    {"Major depressive episode", 14, any_age, 5, 30,
     {"Sertraline 50 mg daily; cognitive behavioural therapy referral",
      "Mirtazapine 15 mg at night; crisis team follow-up"}},
    {"Generalised anxiety disorder", 14, any_age, 1, 7,
     {"Escitalopram 10 mg daily; CBT",
      "Psychoeducation and relaxation training"}},
    {"Sepsis of urinary origin", 0, any_age, 5, 21,
     {"Sepsis bundle: blood cultures, IV piperacillin-tazobactam, fluids and lactate",
      "IV meropenem (ESBL organism); ICU admission"}},
    {"COVID-19 pneumonia", 0, any_age, 3, 21,
     {"Dexamethasone 6 mg daily for 10 days; supplemental oxygen",
      "Remdesivir for 5 days; prone positioning"}},
    {"Influenza A", 0, any_age, 1, 5,
     {"Oseltamivir 75 mg twice daily for 5 days",
      "Supportive care; paracetamol and fluids"}},
    {"Acute kidney injury", 18, any_age, 3, 14,
     {"Nephrotoxic drugs stopped; IV fluids and daily creatinine",
      "Haemodialysis for hyperkalaemia (K 6.8 mmol/L)"}},
    {"Hypothyroidism", 10, any_age, 1, 2,
     {"Levothyroxine 50 mcg daily; TSH check in 6 weeks",
      "Levothyroxine dose increased to 100 mcg"}},
    {"Diabetic ketoacidosis", 5, any_age, 2, 6,
     {"Fixed-rate IV insulin infusion, IV fluids and potassium replacement",
      "DKA protocol; diabetes specialist nurse education before discharge"}},
    {"Osteoarthritis of the right knee", 45, any_age, 1, 6,
     {"Total knee replacement",
      "Physiotherapy; paracetamol and topical diclofenac",
      "Intra-articular corticosteroid injection"}},
    {"Lumbar disc herniation with sciatica", 20, 80, 1, 4,
     {"Analgesia, physiotherapy and activity advice",
      "Microdiscectomy at L5/S1"}},
    {"Renal colic (ureteric stone)", 16, any_age, 1, 3,
     {"Diclofenac and tamsulosin; stone passed spontaneously",
      "Ureteroscopy with laser lithotripsy and stent"}},
    {"Anaphylaxis (peanut)", 1, any_age, 1, 2,
     {"IM adrenaline 0.5 mg, chlorphenamine and hydrocortisone; auto-injector prescribed",
      "Observation for 12 hours; allergy clinic referral"}},
    {"Alcohol withdrawal syndrome", 18, 85, 3, 10,
     {"Chlordiazepoxide reducing regimen; IV thiamine",
      "Lorazepam as needed; alcohol liaison team referral"}},
    {"Bronchiolitis (RSV)", 0, 1, 2, 6,
     {"Supportive care: nasal suction, high-flow oxygen and feeding support",
      "Nasogastric feeding; oxygen saturation monitoring"}},
    {"Acute otitis media", 0, 12, 1, 2,
     {"Amoxicillin for 5 days; analgesia",
      "Watchful waiting; paracetamol and ibuprofen"}},
    {"Acute tonsillitis", 3, 40, 1, 3,
     {"Phenoxymethylpenicillin for 10 days",
      "IV benzylpenicillin; dexamethasone single dose"}},
    {"Cataract, left eye", 50, any_age, 1, 1,
     {"Phacoemulsification with intraocular lens implant",
      "Post-operative steroid eye drops"}},
    {"Delirium due to a urinary infection", 65, any_age, 4, 20,
     {"Treatment of the infection; reorientation and sleep hygiene",
      "Medication review; low-dose haloperidol for distress"}},
}};
// clang-format on

// Admissions fall from 2000 (or the day after birth) to the end of 2025; the patients still
// admitted came in during the last 60 days of that window.
constexpr sys_days first_admission{year{2000} / January / 1};
constexpr sys_days last_admission{year{2025} / December / 31};
constexpr int recent_days = 60;
constexpr sys_days first_birth{year{1930} / January / 1};
constexpr sys_days last_birth{year{2020} / December / 31};

int age_on(year_month_day born, year_month_day day) {
    int age = static_cast<int>(day.year()) - static_cast<int>(born.year());
    if (day.month() < born.month() || (day.month() == born.month() && day.day() < born.day()))
        --age;
    return age;
}

std::uint64_t span_days(sys_days from, sys_days to) { // inclusive count, from <= to
    return static_cast<std::uint64_t>((to - from).count()) + 1;
}

sys_days plus_days(sys_days d, std::uint64_t n) {
    return d + days{static_cast<days::rep>(n)};
}

// ---- the loader ------------------------------------------------------------------------

// The protocol numbers a statement's placeholders with 16 bits.
constexpr std::size_t max_placeholders = 65535;
constexpr std::size_t columns_per_row = 5;
// Rows per INSERT statement: large enough that round trips do not dominate, small enough
// that the statement and its parameters stay far below max_allowed_packet (about 150 bytes a
// record: 2,000 rows ~ 300 kB).
constexpr std::size_t rows_per_insert =
    std::min<std::size_t>(2000, max_placeholders / columns_per_row);

constexpr std::string_view insert_patients =
    "INSERT INTO patients (first_name, last_name, date_of_birth, gender, contact_number) VALUES ";
constexpr std::string_view insert_records = "INSERT INTO medical_records (patient_id, diagnosis, "
                                            "treatment, admission_date, discharge_date) VALUES ";

// How the ids of a multi-row INSERT into patients are found.
//
// With innodb_autoinc_lock_mode 0 ("traditional") or 1 ("consecutive", the MariaDB default),
// an INSERT ... VALUES with a known number of rows is a "simple insert": InnoDB reserves all
// its ids at once, so they are last_insert_id(), + auto_increment_increment, ... With mode 2
// ("interleaved", the MySQL 8 default, so Azure's and Cloud SQL's), concurrent inserts into the
// same table may take ids between ours. Then each batch runs in a REPEATABLE READ transaction
// whose snapshot is taken before the insert, and reads its ids back: every row with an id
// at or above our first one that the snapshot sees is ours (rows that others insert meanwhile
// commit after the snapshot, and ids only grow), in the order of our VALUES list.
struct id_strategy {
    bool read_back = true;
    std::uint64_t increment = 1;
};

id_strategy choose_id_strategy(connection& conn) {
    error_code ec;
    diagnostics diag;
    const auto r = conn.query(
        "SELECT @@innodb_autoinc_lock_mode, @@session.auto_increment_increment", ec, diag);
    if (ec || r.empty() || r[0].is_null(0))
        return {}; // not InnoDB, or cannot tell: read back, which is right in every mode
    const auto mode = r[0].get<std::int64_t>(0);
    return {mode == 2, r[0].get<std::uint64_t>(1)};
}

// A batch's transaction: rolled back unless committed (a failed batch leaves nothing).
class batch_transaction {
public:
    batch_transaction(connection& conn, bool snapshot) : conn_(conn) {
        if (snapshot) {
            conn_.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ");
            conn_.query("START TRANSACTION WITH CONSISTENT SNAPSHOT");
        } else {
            conn_.query("START TRANSACTION");
        }
        active_ = true;
    }
    batch_transaction(const batch_transaction&) = delete;
    batch_transaction& operator=(const batch_transaction&) = delete;
    ~batch_transaction() {
        if (active_) {
            error_code ec;
            diagnostics diag;
            conn_.query("ROLLBACK", ec, diag);
        }
    }
    void commit() {
        conn_.query("COMMIT");
        active_ = false;
    }

private:
    connection& conn_;
    bool active_ = false;
};

// Multi-row INSERT statements, prepared once per row count and reused (a load needs only a
// few counts: the full chunk and the remainders).
class inserter {
public:
    inserter(connection& conn, std::string_view prefix) : conn_(conn), prefix_(prefix) {}

    // Inserts rows of columns_per_row parameters each, in chunks of at most rows_per_insert
    // rows. Returns the first id of every chunk (last_insert_id()) with its row count.
    std::vector<std::pair<std::uint64_t, std::size_t>> insert(std::span<const param> params) {
        std::vector<std::pair<std::uint64_t, std::size_t>> chunks;
        const std::size_t rows = params.size() / columns_per_row;
        for (std::size_t done = 0; done < rows;) {
            const std::size_t n = std::min(rows_per_insert, rows - done);
            const auto r = statement_for(n).execute_span(
                params.subspan(done * columns_per_row, n * columns_per_row));
            if (r.affected_rows() != n)
                throw std::runtime_error(
                    fmt::format("bulk_load: an INSERT of {} rows reports {} rows inserted", n,
                                r.affected_rows()));
            chunks.emplace_back(r.last_insert_id(), n);
            done += n;
        }
        return chunks;
    }

private:
    statement& statement_for(std::size_t rows) {
        auto it = statements_.find(rows);
        if (it == statements_.end()) {
            std::string sql(prefix_);
            sql.reserve(prefix_.size() + rows * 12);
            for (std::size_t i = 0; i < rows; ++i)
                sql += i == 0 ? "(?,?,?,?,?)" : ",(?,?,?,?,?)";
            it = statements_.emplace(rows, conn_.prepare(sql)).first;
        }
        return it->second;
    }

    connection& conn_;
    std::string_view prefix_;
    std::map<std::size_t, statement> statements_;
};

// The ids of a batch's patients, in insertion order.
std::vector<std::int64_t>
patient_ids(connection& conn, const id_strategy& strategy,
            const std::vector<std::pair<std::uint64_t, std::size_t>>& chunks, std::size_t count) {
    std::vector<std::int64_t> ids;
    ids.reserve(count);
    if (!strategy.read_back) {
        for (const auto& [first, n] : chunks)
            for (std::size_t i = 0; i < n; ++i)
                ids.push_back(static_cast<std::int64_t>(first + i * strategy.increment));
        return ids;
    }
    const auto r = conn.execute("SELECT id FROM patients WHERE id >= ? ORDER BY id LIMIT ?",
                                chunks.front().first, static_cast<std::uint64_t>(count));
    for (const auto& row : r)
        ids.push_back(row.get<std::int64_t>(0));
    if (ids.size() != count)
        throw std::runtime_error(fmt::format(
            "bulk_load: inserted {} patients but found {} of them when reading their ids back",
            count, ids.size()));
    return ids;
}

} // namespace

// ---- generator -------------------------------------------------------------------------

generator::generator(std::uint64_t seed) : state_(seed) {
}

// splitmix64 (Steele, Lea, Flood 2014; the constants of Vigna's reference): a 64-bit counter
// through a bijective mixer. Full period 2^64, passes BigCrush, and any seed is a good seed.
std::uint64_t generator::next_u64() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// Uniform in [0, n): draws below 2^64 mod n are rejected, so that every residue has the same
// number of preimages (no modulo bias). A draw is rejected with probability (2^64 mod n) / 2^64,
// below 2^-50 for the list sizes and day counts used here: the loop almost never repeats.
std::uint64_t generator::below(std::uint64_t n) {
    if (n <= 1)
        return 0;
    const std::uint64_t threshold = (0 - n) % n; // 2^64 mod n
    for (;;) {
        const std::uint64_t r = next_u64();
        if (r >= threshold)
            return r % n;
    }
}

patient generator::next_patient() {
    patient p;
    const auto roll = below(100);
    if (roll < 49) {
        p.gender = "female";
    } else if (roll < 98) {
        p.gender = "male";
    } else {
        p.gender = "other";
    }
    const bool female = p.gender == "female" || (p.gender == "other" && below(2) == 0);
    p.first_name =
        female ? female_names[below(female_names.size())] : male_names[below(male_names.size())];
    p.last_name = last_names[below(last_names.size())];
    if (below(40) == 0) { // a double-barrelled name now and then
        p.last_name += '-';
        p.last_name += last_names[below(last_names.size())];
    }
    p.date_of_birth = plus_days(first_birth, below(span_days(first_birth, last_birth)));

    // Formats people type in, each within VARCHAR(15); the numbers are in ranges kept for
    // fiction (555-01xx, 07700 900xxx, 0491 570 xxx) so none is anyone's real number. The
    // digits are drawn before the call: the order in which arguments are evaluated is
    // unspecified, and the same seed must give the same numbers with every compiler.
    const auto format = below(8);
    const auto area = 201 + below(789);
    const auto line = below(100);
    const auto extension = below(1000);
    switch (format) {
    case 0: // none given
        break;
    case 1:
    case 2:
        p.contact_number = fmt::format("+1 {} 555 01{:02}", area, line);
        break;
    case 3:
        p.contact_number = fmt::format("({}) 555-01{:02}", area, line);
        break;
    case 4:
        p.contact_number = fmt::format("+44 7700 900{:03}", extension);
        break;
    case 5:
        p.contact_number = fmt::format("07700 900{:03}", extension);
        break;
    case 6:
        p.contact_number = fmt::format("0491 570 {:03}", extension);
        break;
    default:
        p.contact_number = fmt::format("555-01{:02}", line);
        break;
    }
    return p;
}

std::vector<medical_record> generator::records_for(year_month_day born, std::size_t count) {
    std::vector<medical_record> records;
    records.reserve(count);
    const sys_days start = std::max(first_admission, sys_days(born) + days{1});
    const sys_days end = std::max(start, last_admission);
    const sys_days recent = std::max(start, end - days{recent_days - 1});
    for (std::size_t i = 0; i < count; ++i) {
        medical_record r;
        const bool still_admitted = below(10) == 0;
        const sys_days admitted = still_admitted ? plus_days(recent, below(span_days(recent, end)))
                                                 : plus_days(start, below(span_days(start, end)));
        r.admission_date = admitted;

        // One of the conditions a person of that age gets (every age has several).
        const int age = age_on(born, r.admission_date);
        std::array<const condition*, conditions.size()> fitting{};
        std::size_t fits = 0;
        for (const auto& c : conditions)
            if (age >= c.min_age && age <= c.max_age)
                fitting[fits++] = &c;
        const condition& c = *fitting[below(fits)];
        std::size_t treatments = 0;
        while (treatments < c.treatments.size() && !c.treatments[treatments].empty())
            ++treatments;
        r.diagnosis = c.diagnosis;
        r.treatment = c.treatments[below(treatments)];
        if (!still_admitted) {
            const auto stay = static_cast<std::uint64_t>(c.max_stay - c.min_stay + 1);
            r.discharge_date =
                plus_days(admitted, static_cast<std::uint64_t>(c.min_stay) + below(stay));
        }
        records.push_back(std::move(r));
    }
    std::stable_sort(records.begin(), records.end(), [](const auto& a, const auto& b) {
        return sys_days(a.admission_date) < sys_days(b.admission_date);
    });
    return records;
}

// ---- bulk_load -------------------------------------------------------------------------

load_report bulk_load(pool& p, const load_options& options) {
    if (options.batch < 1 || options.batch > 10000)
        throw std::invalid_argument(
            fmt::format("load_options::batch is {}; it must be 1 to 10000", options.batch));
    if (options.records_per_patient > 1000)
        throw std::invalid_argument(
            fmt::format("load_options::records_per_patient is {}; it must be 0 to 1000",
                        options.records_per_patient));

    const auto started = steady_clock::now();
    const auto today = today_utc();
    generator gen(options.seed);
    load_report report;

    auto conn = p.acquire();
    // Declared after the connection: closed before it goes back to the pool.
    const id_strategy strategy = choose_id_strategy(*conn);
    inserter patients_inserter(*conn, insert_patients);
    inserter records_inserter(*conn, insert_records);

    std::vector<patient> patients;
    std::vector<medical_record> records;
    std::vector<std::size_t> owner; // records[i] belongs to patients[owner[i]]
    std::vector<param> params;
    while (report.patients < options.patients) {
        const std::size_t n = std::min(options.batch, options.patients - report.patients);
        patients.clear();
        records.clear();
        owner.clear();
        for (std::size_t i = 0; i < n; ++i) {
            patients.push_back(gen.next_patient());
            for (auto& r :
                 gen.records_for(patients.back().date_of_birth, options.records_per_patient)) {
                records.push_back(std::move(r));
                owner.push_back(i);
            }
        }
        // The generator's rows are valid by construction; this keeps it honest.
        for (const auto& pt : patients)
            if (auto errors = validate(pt, today); !errors.empty())
                throw validation_error(std::move(errors));
        for (const auto& r : records)
            if (auto errors = validate(r); !errors.empty())
                throw validation_error(std::move(errors));

        batch_transaction tx(*conn, strategy.read_back);
        params.clear();
        for (const auto& pt : patients) {
            params.emplace_back(pt.first_name);
            params.emplace_back(pt.last_name);
            params.emplace_back(pt.date_of_birth);
            params.emplace_back(pt.gender);
            params.emplace_back(pt.contact_number);
        }
        const auto ids = patient_ids(*conn, strategy, patients_inserter.insert(params), n);
        for (std::size_t i = 0; i < records.size(); ++i)
            records[i].patient_id = ids[owner[i]];

        params.clear();
        for (const auto& r : records) {
            params.emplace_back(r.patient_id);
            params.emplace_back(r.diagnosis);
            params.emplace_back(r.treatment);
            params.emplace_back(r.admission_date);
            params.emplace_back(r.discharge_date);
        }
        records_inserter.insert(params);
        tx.commit();

        report.patients += n;
        report.records += records.size();
        if (options.on_progress)
            options.on_progress(report.patients, report.records);
    }
    report.took = duration_cast<milliseconds>(steady_clock::now() - started);
    return report;
}

} // namespace cloudmysql::clinic
