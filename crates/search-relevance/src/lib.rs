//! The member search's relevance set, shared by `member-search`'s relevance tests and
//! `cargo xtask bench-search`: a seeded generator of realistic directories (names from
//! six locales in Latin, Cyrillic, CJK and Arabic scripts, e-mails, roles, committees),
//! queries of ten kinds with the person each one wants (exact names, e-mails, one typo
//! per word of four kinds, type-ahead, diacritic-free, CJK as typed), and the brute-force
//! reference: a Damerau-Levenshtein ranking of every member, as good as typo matching
//! gets and far too slow to serve.
//!
//! A hit counts as the right person when it has the target's name (folded): two members
//! with the same name cannot be told apart by a query of that name, by any engine.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    missing_docs,
    reason = "test data: seeded arithmetic and self-describing tables"
)]

use member_search::Member;
use member_search::distance::osa;
use member_search::fold::{fold, query_words, tokenize};
use uuid::Uuid;

/// SplitMix64: small, seeded, the same everywhere.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Skewed to the head of a list (common names are common).
    pub fn skewed<'a>(&mut self, list: &[&'a str]) -> &'a str {
        let u = self.unit();
        list[((u * u) * list.len() as f64) as usize]
    }
}

pub struct Locale {
    pub weight: usize,
    pub first: &'static [&'static str],
    pub last: &'static [&'static str],
    pub letters: &'static str,
}

pub const LOCALES: &[Locale] = &[
    Locale {
        weight: 35,
        first: &[
            "James",
            "Mary",
            "John",
            "Patricia",
            "Robert",
            "Jennifer",
            "Michael",
            "Linda",
            "William",
            "Elizabeth",
            "David",
            "Barbara",
            "Richard",
            "Susan",
            "Joseph",
            "Jessica",
            "Thomas",
            "Sarah",
            "Charles",
            "Karen",
            "Christopher",
            "Nancy",
            "Daniel",
            "Lisa",
            "Matthew",
            "Betty",
            "Anthony",
            "Margaret",
            "Mark",
            "Sandra",
            "Donald",
            "Ashley",
            "Steven",
            "Kimberly",
            "Paul",
            "Emily",
            "Andrew",
            "Donna",
            "Joshua",
            "Michelle",
            "Kenneth",
            "Dorothy",
            "Kevin",
            "Carol",
            "Brian",
            "Amanda",
            "George",
            "Melissa",
            "Edward",
            "Deborah",
            "Ronald",
            "Stephanie",
            "Timothy",
            "Rebecca",
            "Jason",
            "Sharon",
            "Jeffrey",
            "Laura",
            "Ryan",
            "Cynthia",
            "Jacob",
            "Kathleen",
            "Gary",
            "Amy",
            "Nicholas",
            "Shirley",
            "Eric",
            "Angela",
            "Jonathan",
            "Helen",
            "Stephen",
            "Anna",
            "Larry",
            "Brenda",
            "Justin",
            "Pamela",
            "Scott",
            "Nicole",
            "Brandon",
            "Emma",
            "Benjamin",
            "Samantha",
            "Samuel",
            "Katherine",
            "Gregory",
            "Christine",
            "Frank",
            "Debra",
            "Alexander",
            "Rachel",
        ],
        last: &[
            "Smith",
            "Johnson",
            "Williams",
            "Brown",
            "Jones",
            "Miller",
            "Davis",
            "Wilson",
            "Anderson",
            "Taylor",
            "Thomas",
            "Moore",
            "Jackson",
            "Martin",
            "Lee",
            "Thompson",
            "White",
            "Harris",
            "Clark",
            "Lewis",
            "Robinson",
            "Walker",
            "Young",
            "Allen",
            "King",
            "Wright",
            "Scott",
            "Hill",
            "Green",
            "Adams",
            "Baker",
            "Nelson",
            "Carter",
            "Mitchell",
            "Roberts",
            "Campbell",
            "Parker",
            "Evans",
            "Edwards",
            "Collins",
            "Stewart",
            "Morris",
            "Rogers",
            "Reed",
            "Cook",
            "Morgan",
            "Bell",
            "Murphy",
            "Bailey",
            "Cooper",
            "Richardson",
            "Cox",
            "Howard",
            "Ward",
            "Peterson",
            "Gray",
            "James",
            "Watson",
            "Brooks",
            "Kelly",
            "Sanders",
            "Price",
            "Bennett",
            "Wood",
            "Barnes",
            "Ross",
            "Henderson",
            "Coleman",
            "Jenkins",
            "Perry",
            "Powell",
            "Long",
            "Patterson",
            "Hughes",
            "Washington",
            "Butler",
            "Simmons",
            "Foster",
            "Bryant",
            "Alexander",
            "Russell",
            "Griffin",
            "Hayes",
            "Myers",
            "Ford",
            "Hamilton",
            "Graham",
            "Sullivan",
            "Wallace",
            "Woods",
            "Cole",
            "West",
            "Jordan",
            "Owens",
            "Reynolds",
            "Fisher",
            "Ellis",
            "Harrison",
            "Gibson",
            "McDonald",
            "Marshall",
            "Murray",
            "Freeman",
            "Wells",
            "Webb",
            "Simpson",
            "Stevens",
            "Tucker",
            "Porter",
            "Hunter",
            "Hicks",
            "Crawford",
            "Henry",
            "Boyd",
            "Mason",
            "Kennedy",
            "Warren",
            "Dixon",
            "Burns",
            "Gordon",
            "Shaw",
            "Holmes",
            "Rice",
            "Robertson",
            "Hunt",
            "Black",
            "Daniels",
            "Palmer",
            "Mills",
            "Nichols",
            "Grant",
            "Knight",
            "Ferguson",
            "Stone",
            "Hawkins",
            "Dunn",
            "Perkins",
            "Hudson",
            "Spencer",
            "Gardner",
            "Stephens",
            "Payne",
            "Pierce",
            "Berry",
            "Matthews",
            "Arnold",
            "Wagner",
            "Willis",
            "Watkins",
            "Olson",
            "Carroll",
            "Duncan",
            "Snyder",
            "Hart",
            "Cunningham",
            "Bradley",
            "Lane",
            "Andrews",
            "Harper",
            "Fox",
            "Riley",
            "Armstrong",
            "Carpenter",
            "Weaver",
            "Greene",
            "Lawrence",
            "Elliott",
            "Sims",
            "Austin",
            "Peters",
            "O'Brien",
            "O'Connor",
            "Fitzgerald",
            "Johnston",
            "Johns",
            "Jonas",
            "Smithson",
            "Robins",
            "Adamson",
            "Hillman",
        ],
        letters: "abcdefghijklmnopqrstuvwxyz",
    },
    Locale {
        weight: 25,
        first: &[
            "José",
            "María",
            "Juan",
            "Lucía",
            "Antonio",
            "Carmen",
            "Manuel",
            "Ana",
            "Francisco",
            "Isabel",
            "David",
            "Laura",
            "Javier",
            "Marta",
            "Daniel",
            "Cristina",
            "Carlos",
            "Sofía",
            "Jesús",
            "Elena",
            "Alejandro",
            "Paula",
            "Miguel",
            "Raquel",
            "Rafael",
            "Pilar",
            "Pablo",
            "Rosa",
            "Sergio",
            "Beatriz",
            "Fernando",
            "Nuria",
            "Jorge",
            "Silvia",
            "Luis",
            "Patricia",
            "Alberto",
            "Andrea",
            "Álvaro",
            "Irene",
            "Adrián",
            "Mónica",
            "Diego",
            "Inés",
            "Raúl",
            "Begoña",
            "Iván",
            "Ángela",
            "Rubén",
            "Verónica",
            "Óscar",
            "Lorena",
            "Andrés",
            "Natalia",
            "Ramón",
            "Alicia",
            "Joaquín",
            "Noelia",
            "Sebastián",
            "Ximena",
        ],
        last: &[
            "García",
            "Rodríguez",
            "González",
            "Fernández",
            "López",
            "Martínez",
            "Sánchez",
            "Pérez",
            "Gómez",
            "Martín",
            "Jiménez",
            "Ruiz",
            "Hernández",
            "Díaz",
            "Moreno",
            "Muñoz",
            "Álvarez",
            "Romero",
            "Alonso",
            "Gutiérrez",
            "Navarro",
            "Torres",
            "Domínguez",
            "Vázquez",
            "Ramos",
            "Gil",
            "Ramírez",
            "Serrano",
            "Blanco",
            "Suárez",
            "Molina",
            "Morales",
            "Ortega",
            "Delgado",
            "Castro",
            "Ortiz",
            "Rubio",
            "Marín",
            "Sanz",
            "Núñez",
            "Iglesias",
            "Medina",
            "Garrido",
            "Cortés",
            "Castillo",
            "Santos",
            "Lozano",
            "Guerrero",
            "Cano",
            "Prieto",
            "Méndez",
            "Cruz",
            "Calvo",
            "Gallego",
            "Vidal",
            "León",
            "Márquez",
            "Herrera",
            "Peña",
            "Flores",
            "Cabrera",
            "Campos",
            "Vega",
            "Fuentes",
            "Carrasco",
            "Díez",
            "Caballero",
            "Reyes",
            "Nieto",
            "Aguilar",
            "Pascual",
            "Santana",
            "Herrero",
            "Lorenzo",
            "Montero",
            "Hidalgo",
            "Giménez",
            "Ibáñez",
            "Ferrer",
            "Durán",
            "Santiago",
            "Benítez",
            "Mora",
            "Vicente",
            "Vargas",
            "Arias",
            "Carmona",
            "Crespo",
            "Román",
            "Pastor",
        ],
        letters: "abcdefghijklmnopqrstuvwxyzáéíóúñ",
    },
    Locale {
        weight: 12,
        first: &[
            "Anh",
            "Bảo",
            "Châu",
            "Dũng",
            "Giang",
            "Hà",
            "Hải",
            "Hạnh",
            "Hiếu",
            "Hoa",
            "Hùng",
            "Hương",
            "Khánh",
            "Lan",
            "Linh",
            "Long",
            "Mai",
            "Minh",
            "Nam",
            "Ngọc",
            "Nhung",
            "Phong",
            "Phúc",
            "Phương",
            "Quân",
            "Quang",
            "Quỳnh",
            "Sơn",
            "Tâm",
            "Thảo",
            "Thắng",
            "Thanh",
            "Thủy",
            "Tiến",
            "Trang",
            "Trung",
            "Tuấn",
            "Tùng",
            "Uyên",
            "Việt",
            "Vy",
            "Xuân",
            "Yến",
            "Thị Thủy",
            "Văn Hùng",
            "Thị Hương",
            "Đức Anh",
            "Hoàng Long",
            "Minh Châu",
            "Ngọc Ánh",
            "Quốc Bảo",
            "Thanh Tùng",
            "Bích Ngọc",
            "Hữu Phước",
        ],
        last: &[
            "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi",
            "Đỗ", "Hồ", "Ngô", "Dương", "Lý", "Trương", "Đinh", "Lương", "Mai", "Trịnh", "Đoàn",
            "Lâm", "Tạ", "Châu",
        ],
        letters: "abcdeghiklmnopqrstuvxyăâđêôơư",
    },
    Locale {
        weight: 10,
        first: &[
            "伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰",
            "娟", "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "小龙", "建华", "志强",
            "俊杰", "子涵", "欣怡", "浩然", "梓轩", "雨桐", "宇轩", "思远", "晓明", "丽娟", "国强",
            "海燕", "春梅", "文杰",
        ],
        last: &[
            "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱",
            "胡", "郭", "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯",
            "邓", "曹", "欧阳", "司马",
        ],
        letters: "",
    },
    Locale {
        weight: 10,
        first: &[
            "Александр",
            "Дмитрий",
            "Максим",
            "Сергей",
            "Андрей",
            "Алексей",
            "Артём",
            "Илья",
            "Кирилл",
            "Михаил",
            "Никита",
            "Матвей",
            "Роман",
            "Егор",
            "Арсений",
            "Иван",
            "Денис",
            "Евгений",
            "Тимофей",
            "Владимир",
            "Анастасия",
            "Мария",
            "Анна",
            "Виктория",
            "Екатерина",
            "Наталья",
            "Марина",
            "Полина",
            "Софья",
            "Дарья",
            "Алиса",
            "Ксения",
            "Елена",
            "Ольга",
            "Татьяна",
            "Юлия",
            "Ирина",
            "Светлана",
            "Людмила",
            "Вера",
        ],
        last: &[
            "Иванов",
            "Смирнов",
            "Кузнецов",
            "Попов",
            "Васильев",
            "Петров",
            "Соколов",
            "Михайлов",
            "Новиков",
            "Фёдоров",
            "Морозов",
            "Волков",
            "Алексеев",
            "Лебедев",
            "Семёнов",
            "Егоров",
            "Павлов",
            "Козлов",
            "Степанов",
            "Николаев",
            "Орлов",
            "Андреев",
            "Макаров",
            "Никитин",
            "Захаров",
            "Зайцев",
            "Соловьёв",
            "Борисов",
            "Яковлев",
            "Григорьев",
            "Романов",
            "Воробьёв",
            "Сергеев",
            "Кузьмин",
            "Фролов",
            "Александров",
            "Дмитриев",
            "Королёв",
            "Гусев",
            "Киселёв",
        ],
        letters: "абвгдежзиклмнопрстуфхцчшщыэюя",
    },
    Locale {
        weight: 8,
        first: &[
            "محمد",
            "أحمد",
            "علي",
            "عمر",
            "خالد",
            "يوسف",
            "إبراهيم",
            "حسن",
            "حسين",
            "عبدالله",
            "مصطفى",
            "سعيد",
            "طارق",
            "كريم",
            "فاطمة",
            "عائشة",
            "مريم",
            "زينب",
            "نور",
            "سارة",
            "ليلى",
            "هدى",
            "رنا",
            "سلمى",
            "ياسمين",
        ],
        last: &[
            "العلي",
            "الحسن",
            "المصري",
            "الأحمد",
            "الخطيب",
            "الشامي",
            "حداد",
            "منصور",
            "سليمان",
            "عبدالرحمن",
            "النجار",
            "الحلبي",
            "القاسم",
            "الزين",
            "العمر",
            "يوسف",
            "درويش",
            "خوري",
            "سعد",
            "عيسى",
        ],
        letters: "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    },
];

pub struct Person {
    pub member: Member,
    pub locale: usize,
}

pub fn directory(size: usize, seed: u64) -> Vec<Person> {
    let mut rng = Rng(seed);
    let total: usize = LOCALES.iter().map(|l| l.weight).sum();
    (0..size)
        .map(|i| {
            let mut r = rng.below(total);
            let locale = LOCALES
                .iter()
                .position(|l| {
                    if r < l.weight {
                        true
                    } else {
                        r -= l.weight;
                        false
                    }
                })
                .unwrap_or(0);
            let l = &LOCALES[locale];
            let first = rng.skewed(l.first);
            let mut last = rng.skewed(l.last).to_owned();
            // Russian family names agree with the person.
            if locale == 4 && (first.ends_with('а') || first.ends_with('я')) {
                last.push('а');
            }
            let ascii = |s: &str| {
                fold(s)
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect::<String>()
            };
            let (f, la) = (ascii(first), ascii(&last));
            let email = if f.is_empty() || la.is_empty() {
                format!("parent{i}@example.org")
            } else {
                match rng.below(3) {
                    0 => format!("{f}.{la}@example.org"),
                    1 => format!("{}{la}{}@mail.example.com", &f[..1], rng.below(100)),
                    _ => format!("{f}{}@school.example.net", rng.below(1000)),
                }
            };
            let mut member = Member::new(Uuid::from_u128(i as u128 + 1), first, &last, &email);
            member.role =
                ["member", "member", "member", "admin", "treasurer"][rng.below(5)].to_owned();
            member.status = ["active", "active", "active", "invited"][rng.below(4)].to_owned();
            member.committee = (rng.below(3) == 0).then(|| {
                ["Book Fair", "Fundraising", "Teacher Appreciation"][rng.below(3)].to_owned()
            });
            Person { member, locale }
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Exact,
    Email,
    Substitution,
    Deletion,
    Insertion,
    Transposition,
    /// "First Las": the full first name, the start of the last name.
    TypeAheadFull,
    /// The first 3–5 letters of a first or last name alone.
    TypeAheadWord,
    NoDiacritics,
    Cjk,
}

impl Kind {
    /// Every kind, in the order of the reports.
    pub const ALL: [Self; 10] = [
        Self::Exact,
        Self::Email,
        Self::Substitution,
        Self::Deletion,
        Self::Insertion,
        Self::Transposition,
        Self::TypeAheadFull,
        Self::TypeAheadWord,
        Self::NoDiacritics,
        Self::Cjk,
    ];

    /// How many hits count: 20 for type-ahead, else 3.
    pub const fn k(self) -> usize {
        match self {
            Self::TypeAheadFull | Self::TypeAheadWord => 20,
            _ => 3,
        }
    }
    pub const fn is_typo(self) -> bool {
        matches!(
            self,
            Self::Substitution | Self::Deletion | Self::Insertion | Self::Transposition
        )
    }
}

pub struct Query {
    pub kind: Kind,
    pub text: String,
    pub target: usize,
    /// For `TypeAheadWord`: the field value (folded) a hit must have, first or last name.
    pub word_of_first: bool,
}

pub fn typo(rng: &mut Rng, word: &str, kind: Kind, letters: &str) -> String {
    let mut c: Vec<char> = word.chars().collect();
    if c.len() < 4 {
        return word.to_owned();
    }
    let letters: Vec<char> = letters.chars().collect();
    match kind {
        Kind::Substitution => {
            let i = rng.below(c.len());
            loop {
                let l = letters[rng.below(letters.len())];
                if fold(&l.to_string()) != fold(&c[i].to_string()) {
                    c[i] = l;
                    break;
                }
            }
        }
        Kind::Deletion => {
            c.remove(rng.below(c.len()));
        }
        Kind::Insertion => {
            let i = rng.below(c.len() + 1);
            c.insert(i, letters[rng.below(letters.len())]);
        }
        Kind::Transposition => {
            let candidates: Vec<usize> = (0..c.len() - 1).filter(|&i| c[i] != c[i + 1]).collect();
            if let Some(&i) = candidates.get(rng.below(candidates.len().max(1))) {
                c.swap(i, i + 1);
            }
        }
        _ => {}
    }
    c.into_iter().collect()
}

/// The standard set: 310 queries (40 exact names, 20 e-mails, 30 of each typo kind, 30
/// of each type-ahead kind, 40 diacritic-free, 30 CJK).
pub fn queries(people: &[Person], seed: u64) -> Vec<Query> {
    queries_scaled(people, seed, 1)
}

/// The standard set with `scale` times as many queries of every kind.
pub fn queries_scaled(people: &[Person], seed: u64, scale: usize) -> Vec<Query> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let plan = [
        (Kind::Exact, 40),
        (Kind::Email, 20),
        (Kind::Substitution, 30),
        (Kind::Deletion, 30),
        (Kind::Insertion, 30),
        (Kind::Transposition, 30),
        (Kind::TypeAheadFull, 30),
        (Kind::TypeAheadWord, 30),
        (Kind::NoDiacritics, 40),
        (Kind::Cjk, 30),
    ];
    for (kind, n) in plan {
        let n = n * scale;
        let mut made = 0;
        while made < n {
            let target = rng.below(people.len());
            let p = &people[target];
            let m = &p.member;
            let latin = p.locale <= 2;
            let text = match kind {
                Kind::Exact => format!("{} {}", m.first_name, m.last_name),
                Kind::Email => m.email.clone(),
                k if k.is_typo() => {
                    if p.locale == 3 {
                        continue;
                    }
                    let letters = LOCALES[p.locale].letters;
                    let words: Vec<String> = format!("{} {}", m.first_name, m.last_name)
                        .split(' ')
                        .map(|w| typo(&mut rng, w, k, letters))
                        .collect();
                    let text = words.join(" ");
                    if fold(&text) == fold(&format!("{} {}", m.first_name, m.last_name)) {
                        continue; // every word too short for a typo
                    }
                    text
                }
                Kind::TypeAheadFull => {
                    let last = fold(&m.last_name);
                    let n = last.chars().count();
                    if !latin && p.locale != 4 || n < 4 {
                        continue;
                    }
                    let cut = 3 + rng.below(3).min(n - 4);
                    format!(
                        "{} {}",
                        m.first_name,
                        last.chars().take(cut).collect::<String>()
                    )
                }
                Kind::TypeAheadWord => {
                    let use_first = rng.below(2) == 0;
                    let word = fold(if use_first {
                        &m.first_name
                    } else {
                        &m.last_name
                    });
                    let n = word.chars().count();
                    if !latin && p.locale != 4 || n < 4 || word.contains(' ') {
                        continue;
                    }
                    let cut = 3 + rng.below(3).min(n - 4);
                    out.push(Query {
                        kind,
                        text: word.chars().take(cut).collect(),
                        target,
                        word_of_first: use_first,
                    });
                    made += 1;
                    continue;
                }
                Kind::NoDiacritics => {
                    let full = format!("{} {}", m.first_name, m.last_name);
                    if full.is_ascii() || !latin {
                        continue;
                    }
                    fold(&full)
                }
                Kind::Cjk => {
                    if p.locale != 3 {
                        continue;
                    }
                    // As typed: family name first, no space.
                    format!("{}{}", m.last_name, m.first_name)
                }
                _ => continue,
            };
            out.push(Query {
                kind,
                text,
                target,
                word_of_first: false,
            });
            made += 1;
        }
    }
    out
}

/// The brute-force reference: every member's cost as the sum over query words of the
/// best of its words (exact 0, prefix 1, else 2 × edit distance), lowest first, by id.
pub struct Reference {
    words: Vec<Vec<Vec<char>>>,
}

impl Reference {
    pub fn new(people: &[Person]) -> Self {
        let words = people
            .iter()
            .map(|p| {
                let m = &p.member;
                let mut w: Vec<Vec<char>> = [
                    format!("{} {}", m.first_name, m.last_name),
                    format!("{}{}", m.last_name, m.first_name),
                    format!("{}{}", m.first_name, m.last_name),
                    m.email.clone(),
                ]
                .iter()
                .flat_map(|t| tokenize(t))
                .map(|t| t.text.chars().collect())
                .collect();
                w.sort();
                w.dedup();
                w
            })
            .collect();
        Self { words }
    }

    pub fn rank(&self, text: &str, k: usize) -> Vec<usize> {
        let q: Vec<Vec<char>> = query_words(text)
            .into_iter()
            .map(|t| t.text.chars().collect())
            .collect();
        let mut scored: Vec<(usize, usize)> = self
            .words
            .iter()
            .enumerate()
            .map(|(i, words)| {
                let cost = q
                    .iter()
                    .map(|qw| {
                        words
                            .iter()
                            .map(|w| {
                                if w == qw {
                                    0
                                } else if w.starts_with(qw) {
                                    1
                                } else {
                                    2 * osa(qw, w)
                                }
                            })
                            .min()
                            .unwrap_or(usize::MAX / 16)
                    })
                    .sum();
                (cost, i)
            })
            .collect();
        scored.sort_unstable();
        scored.into_iter().take(k).map(|(_, i)| i).collect()
    }
}

pub fn same_name(a: &Member, b: &Member) -> bool {
    fold(&a.first_name) == fold(&b.first_name) && fold(&a.last_name) == fold(&b.last_name)
}

pub fn success(people: &[Person], q: &Query, found: &[usize]) -> bool {
    let target = &people[q.target].member;
    found.iter().take(q.kind.k()).any(|&i| {
        let m = &people[i].member;
        if q.kind == Kind::TypeAheadWord {
            if q.word_of_first {
                fold(&m.first_name) == fold(&target.first_name)
            } else {
                fold(&m.last_name) == fold(&target.last_name)
            }
        } else {
            same_name(m, target)
        }
    })
}

#[derive(Default, Clone, Copy)]
pub struct Tally {
    pub n: usize,
    pub ours: usize,
    pub ours_first: usize,
    pub reference: usize,
    pub reference_first: usize,
}

impl Tally {
    pub fn pct(a: usize, n: usize) -> f64 {
        100.0 * a as f64 / n.max(1) as f64
    }
}

/// Whether the first hit of `found` is the target (by name); never for
/// [`Kind::TypeAheadWord`], which asks for a name, not a person.
pub fn first_place(people: &[Person], q: &Query, found: &[usize]) -> bool {
    q.kind != Kind::TypeAheadWord
        && found
            .first()
            .is_some_and(|&i| same_name(&people[i].member, &people[q.target].member))
}

/// Makes every e-mail of `people` unique among themselves and `used` (a database's
/// accounts are unique by e-mail; the generator repeats common names): a repeated one
/// gets a number before its `@`. Call before [`queries`] (e-mail queries use them).
pub fn unique_emails(people: &mut [Person], used: &mut std::collections::HashSet<String>) {
    for p in people.iter_mut() {
        let email = &mut p.member.email;
        if used.insert(email.clone()) {
            continue;
        }
        let (local, domain) = email
            .split_once('@')
            .unwrap_or((email.as_str(), "example.org"));
        let (local, domain) = (local.to_owned(), domain.to_owned());
        let mut n = 2;
        loop {
            let candidate = format!("{local}{n}@{domain}");
            if used.insert(candidate.clone()) {
                *email = candidate;
                break;
            }
            n += 1;
        }
    }
}

/// Tallies per query kind.
#[derive(Default)]
pub struct Tallies(pub Vec<(Kind, Tally)>);

impl Tallies {
    /// Counts one query: whether ours and the reference found the target in the first
    /// k, and at first place.
    pub fn record(
        &mut self,
        kind: Kind,
        ours: bool,
        reference: bool,
        ours_first: bool,
        reference_first: bool,
    ) {
        let i = if let Some(i) = self.0.iter().position(|(k, _)| *k == kind) {
            i
        } else {
            self.0.push((kind, Tally::default()));
            self.0.len() - 1
        };
        let t = &mut self.0[i].1;
        t.n += 1;
        t.ours += usize::from(ours);
        t.reference += usize::from(reference);
        t.ours_first += usize::from(ours_first);
        t.reference_first += usize::from(reference_first);
    }

    /// The sum over the kinds `pred` selects.
    pub fn sum(&self, pred: impl Fn(Kind) -> bool) -> Tally {
        let mut all = Tally::default();
        for (_, t) in self.0.iter().filter(|(k, _)| pred(*k)) {
            all.n += t.n;
            all.ours += t.ours;
            all.reference += t.reference;
            all.ours_first += t.ours_first;
            all.reference_first += t.reference_first;
        }
        all
    }

    /// Our share in the first k (percent) over the kinds `pred` selects.
    pub fn rate(&self, pred: impl Fn(Kind) -> bool) -> f64 {
        let t = self.sum(pred);
        Tally::pct(t.ours, t.n)
    }

    /// A Markdown table: per kind, then all typo kinds together, ours and the
    /// reference's share in the first k and at first place.
    #[must_use]
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| query kind | queries | ours in first k | reference in first k | ours first | reference first |\n|---|---:|---:|---:|---:|---:|\n",
        );
        let row = |out: &mut String, name: &str, k: usize, t: &Tally| {
            out.push_str(&format!(
                "| {name} (k = {k}) | {} | {:.1}% | {:.1}% | {:.1}% | {:.1}% |\n",
                t.n,
                Tally::pct(t.ours, t.n),
                Tally::pct(t.reference, t.n),
                Tally::pct(t.ours_first, t.n),
                Tally::pct(t.reference_first, t.n)
            ));
        };
        for kind in Kind::ALL {
            if let Some((_, t)) = self.0.iter().find(|(k, _)| *k == kind) {
                row(&mut out, &format!("{kind:?}"), kind.k(), t);
            }
        }
        row(
            &mut out,
            "one typo per word, all kinds",
            3,
            &self.sum(Kind::is_typo),
        );
        out
    }
}
