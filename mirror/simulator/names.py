"""Word lists for the simulator's seeded Australian customers (data only, no logic).

The lists are deliberately diverse (Anglo-Celtic, Italian, Greek, Lebanese, Chinese, Vietnamese,
Indian, Filipino, Korean, Pacific, African, Aboriginal and Torres Strait Islander family names)
and include apostrophes, hyphens and a few accented letters, because a mirror that only ever
saw "John Smith" would not be tested on the names real accounts hold.
"""

FIRST_NAMES = (
    "Oliver Jack William Noah Thomas James Lucas Henry Leo Charlie Ethan Mason Liam Harrison "
    "Hudson Archie Cooper Lachlan Riley Angus Hamish Callum Declan Finn Seamus Patrick Brendan "
    "Darren Craig Wayne Shane Bruce Graham Trevor Glenn Barry Kevin Stuart Rhys Owen Gareth "
    "Charlotte Olivia Amelia Isla Mia Ava Grace Willow Harper Chloe Ruby Sophie Matilda Evie "
    "Zoe Ella Lily Sienna Georgia Jessica Emily Hannah Kylie Tracey Sharon Karen Leanne Michelle "
    "Belinda Narelle Kerry Bronwyn Rebecca Megan Siobhan Aoife Niamh "
    "Marco Luca Giuseppe Antonio Francesca Giulia Rosa Maria Salvatore Vincenzo Carmela "
    "Nikos Giorgos Dimitri Eleni Sophia Katerina Vasiliki Konstantinos Yiannis Despina "
    "Mohammed Ahmed Ali Omar Fatima Aisha Zainab Layla Youssef Rami Nadia Hassan Mariam Karim "
    "Wei Jun Ming Xiaoling Hui Yan Li Jing Hao Mei Zhen Bo "
    "Minh Thanh Linh Huong Tuan Quang Ngoc Phuong Duc Hoa "
    "Priya Rahul Anjali Arjun Sanjay Deepika Vikram Neha Rohan Kavya Harpreet Gurpreet Manpreet "
    "Sandeep Amandeep Rajesh Lakshmi Suresh Divya "
    "Jose Maricel Rowena Jerome Cristina Angelica Ramon Marites "
    "Ji-woo Min-jun Seo-yeon Hyun Soo-ah "
    "Sione Mele Tevita Losana Ana Tane Aroha Wiremu Mere "
    "Chidi Amara Kwame Abebe Tendai Nia Zola Adaeze "
    "Jarrah Kirra Marlee Yindi Talara Bindi Warrick Tjarra "
    "Zoë Renée José Chloé Siân Søren Noémie André Dương Zeynep Björn "
    "Sam Alex Jordan Taylor Jamie Kim Robin Casey"
).split()

LAST_NAMES = (
    "Smith Jones Williams Brown Wilson Taylor Johnson White Martin Anderson Thompson Walker "
    "Harris Lee Ryan Robinson Kelly King Davis Wright Evans Roberts Green Hall Wood Jackson "
    "Clarke Mitchell Campbell Murphy Hughes Edwards Cook Turner Morris Hill Baker Young Bell "
    "Cooper Ward Watson Stewart Morgan Bennett Gray Collins Russell Hunt Ross Marshall Kennedy "
    "O'Brien O'Connor O'Neill O'Sullivan McDonald McKenzie MacLeod McGrath Fitzgerald Doyle "
    "Gallagher Byrne Quinn Sheridan Donnelly Brennan Kavanagh Ferguson Henderson Sutherland "
    "Smith-Jones Ashworth-Hill Clarke-Evans Lloyd-Davies "
    "Rossi Russo Ferrari Esposito Bianchi Romano Colombo Ricci Marino Greco Bruno Gallo "
    "Conti De Luca Costa Giordano Mancini Lombardi Moretti Barbieri Santoro "
    "Papadopoulos Nikolaidis Georgiou Christodoulou Karagiannis Vlahos Dimitriou Pappas "
    "Kostopoulos Alexiou Stavrou Economou "
    "Haddad Khoury Nasser Saleh Hamdan Abboud Karam Mansour Aziz Rahman Hussein Shahab "
    "Chen Wang Li Zhang Liu Yang Huang Zhao Wu Zhou Xu Sun Ma Zhu Hu Guo Lin He Gao Luo "
    "Wong Chan Cheung Lam Ng Leung Tang Ho "
    "Nguyen Tran Le Pham Hoang Phan Vu Dang Bui Do Ho Ngo Duong Ly "
    "Singh Kaur Sharma Patel Gupta Kumar Reddy Nair Iyer Menon Pillai Chopra Malhotra Joshi "
    "Desai Mehta Rao Bose Das Gill Sandhu Dhillon Sidhu "
    "Santos Reyes Cruz Bautista Garcia Mendoza Aquino Villanueva Ramos Dela Cruz "
    "Kim Park Choi Jung Kang Yoon Jang Lim "
    "Tupou Fifita Taufa Vaipulu Faleolo Leota Tuilagi Ngata Parata Walker-Tane Te Whare "
    "Okafor Mensah Mwangi Abebe Nkosi Adeyemi Diallo Banda "
    "Mundine Pearson Yunupingu Goodes Freeman Mabo Namatjira Bonner Perkins Gurruwiwi "
    "Müller Schröder Jørgensen Nuñez Gonçalves Kowalski Nowak Novak Horvat Petrović "
    "Jansen De Vries Van der Berg Nielsen Larsen Andersson Virtanen Kovač"
).split()
# "De Luca", "Dela Cruz", "Van der Berg", "Te Whare" were split on spaces above; rejoin them
# so surnames with spaces exist too.
_JOINED = {("De", "Luca"), ("Dela", "Cruz"), ("De", "Vries"), ("Te", "Whare")}


def _rejoin(words: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    i = 0
    while i < len(words):
        if i + 1 < len(words) and (words[i], words[i + 1]) in _JOINED:
            out.append(words[i] + " " + words[i + 1])
            i += 2
        elif words[i : i + 3] == ["Van", "der", "Berg"]:
            out.append("Van der Berg")
            i += 3
        else:
            out.append(words[i])
            i += 1
    return tuple(out)


LAST_NAMES = _rejoin(LAST_NAMES)
FIRST_NAMES = tuple(FIRST_NAMES)

EMAIL_DOMAINS = (
    ("gmail.com", 40), ("outlook.com", 10), ("hotmail.com", 10), ("bigpond.com", 8),
    ("bigpond.net.au", 3), ("yahoo.com.au", 7), ("icloud.com", 8), ("optusnet.com.au", 4),
    ("iinet.net.au", 4), ("live.com.au", 3), ("tpg.com.au", 2), ("internode.on.net", 1),
)

# (state, weight, landline area code, ((suburb, postcode), ...)). Weights follow population,
# nudged up for the small territories so every state shows up in a few thousand customers.
STATES = (
    ("NSW", 30, "02", (
        ("Sydney", "2000"), ("Parramatta", "2150"), ("Penrith", "2750"), ("Newcastle", "2300"),
        ("Wollongong", "2500"), ("Blacktown", "2148"), ("Chatswood", "2067"), ("Dubbo", "2830"),
        ("Wagga Wagga", "2650"), ("Bondi", "2026"), ("Liverpool", "2170"),
        ("Coffs Harbour", "2450"), ("Orange", "2800"), ("Castle Hill", "2154"))),
    ("VIC", 25, "03", (
        ("Melbourne", "3000"), ("Geelong", "3220"), ("Ballarat", "3350"), ("Bendigo", "3550"),
        ("Frankston", "3199"), ("Dandenong", "3175"), ("Box Hill", "3128"), ("Werribee", "3030"),
        ("Shepparton", "3630"), ("Richmond", "3121"), ("Mildura", "3500"), ("Traralgon", "3844"))),
    ("QLD", 20, "07", (
        ("Brisbane", "4000"), ("Kirwan", "4817"), ("Cairns", "4870"), ("Toowoomba", "4350"),
        ("Southport", "4215"), ("Townsville", "4810"), ("Mackay", "4740"), ("Ipswich", "4305"),
        ("Maroochydore", "4558"), ("Rockhampton", "4700"), ("Bundaberg", "4670"),
        ("Logan Central", "4114"), ("Hervey Bay", "4655"))),
    ("WA", 11, "08", (
        ("Perth", "6000"), ("Fremantle", "6160"), ("Joondalup", "6027"), ("Mandurah", "6210"),
        ("Bunbury", "6230"), ("Rockingham", "6168"), ("Geraldton", "6530"), ("Midland", "6056"),
        ("Kalgoorlie", "6430"), ("Albany", "6330"))),
    ("SA", 7, "08", (
        ("Adelaide", "5000"), ("Glenelg", "5045"), ("Mount Gambier", "5290"),
        ("Salisbury", "5108"), ("Port Augusta", "5700"), ("Modbury", "5092"), ("Whyalla", "5600"),
        ("Murray Bridge", "5253"), ("Victor Harbor", "5211"))),
    ("TAS", 3, "03", (
        ("Hobart", "7000"), ("Launceston", "7250"), ("Devonport", "7310"), ("Burnie", "7320"),
        ("Kingston", "7050"), ("Sandy Bay", "7005"))),
    ("ACT", 2, "02", (
        ("Canberra", "2601"), ("Belconnen", "2617"), ("Tuggeranong", "2900"),
        ("Gungahlin", "2912"), ("Woden", "2606"), ("Kingston", "2604"))),
    ("NT", 2, "08", (
        ("Darwin", "0800"), ("Palmerston", "0830"), ("Alice Springs", "0870"),
        ("Katherine", "0850"), ("Casuarina", "0810"))),
)

STREETS = (
    "George Street", "Pitt Street", "Murray Street", "Collins Street", "Mono Drive",
    "Thuringowa Drive", "Smith Street", "High Street", "Church Street", "Station Road",
    "Victoria Road", "King Street", "Queen Street", "Park Avenue", "Bay Road", "Beach Road",
    "Hill Street", "Main Road", "Railway Parade", "Wattle Grove", "Banksia Court",
    "Acacia Avenue", "Eucalyptus Drive", "Jacaranda Close", "Ocean View Crescent",
    "Bottlebrush Way", "Kookaburra Lane", "Waratah Street", "Grevillea Place", "Lakeside Drive",
    "Ridge Road", "Pacific Highway", "Bruce Highway", "Stirling Highway", "Anzac Parade",
    "Bridge Road", "Cook Street", "Flinders Street", "Elizabeth Street", "William Street",
    "Macquarie Street", "Gould Street", "Bligh Place", "Boundary Road", "Old Northern Road",
    "Wilga Street", "Coolabah Circuit", "Yarra Street", "Darling Street", "Sturt Street",
)

PANELS = (
    ("440W - JINKO - (JKM440N-54HL4-B)", 440), ("415W - TRINA - (TSM-415DE09R.08)", 415),
    ("400W - LONGI - (LR5-54HPH-400M)", 400), ("320W - SUNPOWER - (SPR-E19-320)", 320),
    ("370W - REC - (REC370AA)", 370), ("430W - CANADIAN SOLAR - (CS6R-430T)", 430),
    ("405W - Q CELLS - (Q.PEAK DUO ML-G10+ 405)", 405), ("450W - AIKO - (AIKO-A450-MAH54Mw)", 450),
)

INVERTERS = (
    "SMA Australia 20kW (STP20000TL-30)", "Fronius Primo 5.0-1 (5kW)", "Sungrow SG5.0RS (5kW)",
    "GoodWe GW6000-DNS-30 (6kW)", "Fronius Symo 10.0-3-M (10kW)", "SolarEdge SE8250H (8.25kW)",
    "Huawei SUN2000-5KTL-L1 (5kW)", "Enphase IQ8PLUS-72-2-US (microinverter)",
    "Sungrow SG50CX (50kW)", "SMA Sunny Tripower CORE1 (50kW)",
)

NOTES = (
    "Called, left voicemail.", "Customer wants a quote for a 6.6kW system with battery.",
    "Site visit booked for Tuesday morning.", "Roof is tin, north-facing, no shading.",
    "Interested in a Tesla Powerwall.", "Sent proposal via email.",
    "Asked about STC rebates and the state battery rebate.", "Follow up after next power bill.",
    "Meter box needs upgrade before install.", "Prefers SMS over calls.",
    "Signed contract, deposit paid.", "Installation scheduled.",
    "Grid connection approved by the distributor.", "Tiled roof, two storeys, needs scaffolding.",
    "Wants finance options (green loan).", "Comparing with two other quotes.",
    "Referred by a neighbour.", "Spoke to partner, decision next week.",
    "Existing 1.5kW system to be removed.", "Three-phase power on site.",
    "Dog on property, call before arriving.", "Strata approval required.",
    "Customer said: \"please don't call after 6pm\".", "Bill shows ~25kWh/day usage.",
    "Requested Chinese-speaking consultant.", "EV charger enquiry as well.",
    "Not interested at this stage — revisit in 6 months.", "Paid in full, 100% happy 👍",
)

CONTACT_TIMES = ("Mornings", "Middays", "Afternoons", "Evenings")

BUSINESS_WORDS = (
    "Plumbing", "Electrical", "Bakery", "Dental", "Physio", "Motors", "Landscaping", "Cafe",
    "Joinery", "Accounting", "Vet Clinic", "Fitness", "Hardware", "Removals", "Logistics",
    "Printing", "Pharmacy", "Childcare", "Roofing", "Kitchens",
)

LARGE_SCALE_WORDS = (
    "Cold Storage", "Agricultural Co-op", "Winery", "Dairy", "Shire Council", "Aquatic Centre",
    "Manufacturing", "Distribution Centre", "Hospital", "Feedlot",
)

# The account's users (owners of customers). The first is the API key's owner, who owns
# customers created through the API without a `useremail`. User 221 is the digest's example.
USERS = (
    {"user_id": "221", "first_name": "John", "last_name": "User", "phone_number": "0415 644 644",
     "email": "user@bigsolarcity.com.au", "work_title": "Director", "username": "user1"},
    {"user_id": "16", "first_name": "Chris", "last_name": "Taeni", "phone_number": "0412 118 203",
     "email": "chris@bigsolarcity.com.au", "work_title": "Sales Manager", "username": "chris.t"},
    {"user_id": "305", "first_name": "Priya", "last_name": "Raman", "phone_number": "0433 902 117",
     "email": "priya.raman@bigsolarcity.com.au", "work_title": "Solar Consultant",
     "username": "priyar"},
    {"user_id": "412", "first_name": "Liam", "last_name": "O'Donnell",
     "phone_number": "0401 556 870", "email": "liam@bigsolarcity.com.au",
     "work_title": "Solar Consultant", "username": "liamod"},
    {"user_id": "518", "first_name": "Mei", "last_name": "Chen", "phone_number": "0422 300 419",
     "email": "mei.chen@bigsolarcity.com.au", "work_title": "Design Engineer",
     "username": "meic"},
    {"user_id": "627", "first_name": "Tane", "last_name": "Walker", "phone_number": "",
     "email": "tane@bigsolarcity.com.au", "work_title": "", "username": "tanew"},
)
