package synth

import (
	"math/rand/v2"
	"strconv"
	"strings"
)

// theme is the vocabulary of one hidden category.
type theme struct {
	name       string
	subcats    []string
	nouns      []string
	adjectives []string
	materials  []string
	brands     []string
	priceLo    float64
	priceHi    float64
}

// baseThemes are the built-in category vocabularies. Categories beyond
// len(baseThemes) reuse one of them and add generated words of their own.
var baseThemes = [...]theme{
	{
		name:       "Kitchen & Dining",
		subcats:    []string{"Cookware", "Kitchen Utensils & Gadgets", "Cutlery & Knife Accessories"},
		nouns:      []string{"skillet", "saucepan", "chef knife", "cutting board", "spatula", "colander", "kettle", "whisk", "mixing bowl", "teapot", "frying pan", "ladle"},
		adjectives: []string{"nonstick", "stainless", "dishwasher-safe", "ceramic", "heat-resistant", "cast-iron", "induction-ready"},
		materials:  []string{"stainless steel", "silicone", "bamboo", "cast iron", "tempered glass"},
		brands:     []string{"CopperChef", "KitchenCraft", "Culina", "PanPro", "Saveur"},
		priceLo:    8, priceHi: 60,
	},
	{
		name:       "Sports & Outdoors",
		subcats:    []string{"Camping & Hiking", "Outdoor Recreation", "Climbing"},
		nouns:      []string{"tent", "backpack", "trekking pole", "sleeping bag", "water bottle", "headlamp", "carabiner", "hammock", "daypack", "rain jacket", "camp stove"},
		adjectives: []string{"waterproof", "lightweight", "ripstop", "insulated", "packable", "windproof", "trail-ready"},
		materials:  []string{"ripstop nylon", "aluminum", "polyester", "titanium", "down fill"},
		brands:     []string{"TrailPeak", "Summit Gear", "NorthRidge", "Alpenwerk", "CampLite"},
		priceLo:    12, priceHi: 150,
	},
	{
		name:       "Electronics",
		subcats:    []string{"Headphones", "Accessories & Supplies", "Computers & Accessories"},
		nouns:      []string{"headphones", "charger", "usb cable", "speaker", "power bank", "adapter", "keyboard", "mouse", "earbuds", "hdmi switch", "webcam"},
		adjectives: []string{"wireless", "bluetooth", "usb-c", "fast-charging", "noise-cancelling", "rechargeable", "low-latency"},
		materials:  []string{"braided cable", "lithium battery", "aluminum housing", "abs plastic", "copper wiring"},
		brands:     []string{"Voltix", "SonicWave", "Ampere", "Circuit Labs", "Nexon"},
		priceLo:    6, priceHi: 120,
	},
	{
		name:       "Beauty & Personal Care",
		subcats:    []string{"Skin Care", "Hair Care", "Makeup"},
		nouns:      []string{"moisturizer", "serum", "lipstick", "shampoo", "conditioner", "face mask", "cleanser", "body lotion", "eye cream", "sunscreen", "toner"},
		adjectives: []string{"hydrating", "fragrance-free", "organic", "vegan", "nourishing", "paraben-free", "soothing"},
		materials:  []string{"hyaluronic acid", "shea butter", "aloe vera", "vitamin c", "argan oil"},
		brands:     []string{"Lumiere", "Bloom & Co", "PureSkin", "Velvet", "Aurora"},
		priceLo:    5, priceHi: 45,
	},
	{
		name:       "Toys & Games",
		subcats:    []string{"Puzzles", "Games", "Building Toys"},
		nouns:      []string{"jigsaw puzzle", "board game", "building blocks", "action figure", "plush toy", "card game", "dollhouse", "kite", "toy car", "marble run", "play set"},
		adjectives: []string{"colorful", "educational", "family", "creative", "collectible", "kid-safe", "interactive"},
		materials:  []string{"wooden pieces", "soft plush", "cardboard tiles", "bpa-free plastic", "die-cast metal"},
		brands:     []string{"PlayNest", "FunForge", "Tiny Titans", "BrickWorks", "Jolly"},
		priceLo:    7, priceHi: 70,
	},
	{
		name:       "Pet Supplies",
		subcats:    []string{"Dogs", "Cats", "Fish & Aquatic Pets"},
		nouns:      []string{"dog leash", "cat tree", "chew toy", "pet bed", "litter box", "pet feeder", "collar", "aquarium filter", "scratching post", "dog harness", "cat toy"},
		adjectives: []string{"durable", "washable", "chew-proof", "adjustable", "odor-control", "reflective", "calming"},
		materials:  []string{"nylon webbing", "natural rubber", "sisal rope", "memory foam", "fleece"},
		brands:     []string{"PawPal", "Furry Friends", "Tailwag", "PetNest", "Whisker"},
		priceLo:    4, priceHi: 80,
	},
	{
		name:       "Office Products",
		subcats:    []string{"Office & School Supplies", "Writing & Correction Supplies", "Desk Accessories"},
		nouns:      []string{"notebook", "stapler", "desk organizer", "gel pen", "binder", "sticky notes", "calculator", "highlighter", "file folder", "label maker"},
		adjectives: []string{"refillable", "ergonomic", "recycled", "spiral-bound", "heavy-duty", "acid-free", "smudge-proof"},
		materials:  []string{"recycled paper", "metal clip", "quick-dry ink", "polypropylene", "steel spring"},
		brands:     []string{"PaperTrail", "Inkwell", "DeskMate", "Scribe", "Officio"},
		priceLo:    3, priceHi: 40,
	},
	{
		name:       "Patio, Lawn & Garden",
		subcats:    []string{"Gardening & Lawn Care", "Watering Equipment", "Plants, Seeds & Bulbs"},
		nouns:      []string{"pruning shears", "hose nozzle", "planter", "seed tray", "watering can", "garden gloves", "trowel", "rake", "sprinkler", "raised bed"},
		adjectives: []string{"rust-resistant", "weatherproof", "galvanized", "uv-stabilized", "frost-proof", "heavy-gauge", "self-watering"},
		materials:  []string{"galvanized steel", "terracotta", "cedar wood", "hardened carbon steel", "recycled resin"},
		brands:     []string{"GreenThumb", "Verdant", "RootsCo", "Terra", "Bloomfield"},
		priceLo:    6, priceHi: 90,
	},
}

// filler words are shared by all categories.
var fillerWords = [...]string{
	"great", "quality", "product", "item", "new", "pack", "set", "value", "premium",
	"classic", "original", "design", "perfect", "gift", "everyday", "home", "easy",
	"size", "color", "style", "best", "travel", "simple", "compact", "deluxe",
}

var (
	positiveOpeners = [...]string{"I love this %s.", "This %s works great.", "Best %s I have owned.", "Really happy with this %s.", "Excellent %s for the price."}
	neutralOpeners  = [...]string{"The %s is okay.", "Decent %s overall.", "This %s does the job.", "Average %s, nothing special."}
	negativeOpeners = [...]string{"Disappointed with this %s.", "The %s broke after a week.", "Poor quality %s.", "Returned the %s.", "This %s stopped working."}

	positiveSummaries = [...]string{"Five Stars", "Love it", "Great %s", "Highly recommend", "Works perfectly"}
	neutralSummaries  = [...]string{"Three Stars", "It's okay", "Decent %s", "As expected"}
	negativeSummaries = [...]string{"One Star", "Disappointed", "Broke quickly", "Not worth it", "Poor %s"}

	firstNames = [...]string{"James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David", "Elizabeth", "William", "Susan", "Richard", "Karen", "Joseph", "Nancy", "Thomas", "Lisa", "Chris", "Sandra", "Daniel", "Ashley", "Matthew", "Emily", "Anthony", "Donna", "Mark", "Michelle", "Paul", "Laura"}
	lastNames  = [...]string{"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "Lee", "Thompson", "White", "McDonald", "Clark", "Lewis", "Walker"}
)

// syllables build the generated words of categories past the built-in themes.
var syllables = [...]string{"ka", "lo", "mi", "ren", "tu", "sa", "vor", "ex", "pli", "dro", "zan", "qui", "mo", "tra", "nel", "fi"}

// categoryVocab is the resolved vocabulary of one hidden category.
type categoryVocab struct {
	theme
	extra []string // generated words for categories past the built-in themes
}

// buildVocab returns the vocabularies of n hidden categories. The first
// len(baseThemes) are the built-in themes; later ones reuse a theme with a
// numbered name, new brands and a handful of generated words that make their
// texts distinguishable.
func buildVocab(seed uint64, n int) []categoryVocab {
	out := make([]categoryVocab, n)
	for c := range n {
		t := baseThemes[c%len(baseThemes)]
		v := categoryVocab{theme: t}
		if c >= len(baseThemes) {
			r := newRand(seed, streamText, uint64(c))
			round := c / len(baseThemes)
			v.name = t.name + " " + strconv.Itoa(round+1)
			v.extra = make([]string, 6)
			for i := range v.extra {
				var b strings.Builder
				for range 2 + r.IntN(2) {
					b.WriteString(syllables[r.IntN(len(syllables))])
				}
				v.extra[i] = b.String()
			}
			v.brands = make([]string, len(t.brands))
			for i, br := range t.brands {
				v.brands[i] = br + " " + strings.ToUpper(v.extra[i%len(v.extra)][:1]) + v.extra[i%len(v.extra)][1:]
			}
		}
		out[c] = v
	}
	return out
}

// pick returns a uniformly chosen element of xs.
func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// titleCase upper-cases the first letter of every space-separated word.
func titleCase(s string) string {
	b := []byte(s)
	up := true
	for i, c := range b {
		if up && c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
		up = c == ' '
	}
	return string(b)
}

// article returns the indefinite article for word.
func article(word string) string {
	if word != "" && strings.IndexByte("aeiouAEIOU", word[0]) >= 0 {
		return "an"
	}
	return "a"
}

// capitalize upper-cases the first letter of s.
func capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// categoryWord returns a content word of the category: usually an adjective
// or material, sometimes one of its generated words.
func (v *categoryVocab) categoryWord(r *rand.Rand) string {
	if len(v.extra) > 0 && r.IntN(3) == 0 {
		return pick(r, v.extra)
	}
	if r.IntN(2) == 0 {
		return pick(r, v.adjectives)
	}
	return pick(r, v.materials)
}

// title builds a product title such as "Culina Nonstick Skillet Premium Set, 10 Pack".
func (v *categoryVocab) title(r *rand.Rand, brand, noun string) string {
	var b strings.Builder
	b.WriteString(brand)
	b.WriteByte(' ')
	b.WriteString(titleCase(pick(r, v.adjectives)))
	if len(v.extra) > 0 {
		b.WriteByte(' ')
		b.WriteString(titleCase(pick(r, v.extra)))
	}
	b.WriteByte(' ')
	b.WriteString(titleCase(noun))
	if r.IntN(2) == 0 {
		b.WriteByte(' ')
		b.WriteString(titleCase(fillerWords[r.IntN(len(fillerWords))]))
	}
	switch r.IntN(4) {
	case 0:
		b.WriteString(", ")
		b.WriteString(strconv.Itoa(2 + r.IntN(11)))
		b.WriteString(" Pack")
	case 1:
		b.WriteString(" - ")
		b.WriteString(titleCase(pick(r, v.materials)))
	}
	return b.String()
}

// sentence builds one descriptive sentence mixing category and filler words.
func (v *categoryVocab) sentence(r *rand.Rand, noun string) string {
	var b strings.Builder
	switch r.IntN(4) {
	case 0:
		b.WriteString("This ")
		b.WriteString(v.categoryWord(r))
		b.WriteByte(' ')
		b.WriteString(noun)
		b.WriteString(" is made of ")
		b.WriteString(pick(r, v.materials))
	case 1:
		w := fillerWords[r.IntN(len(fillerWords))]
		b.WriteString(capitalize(article(w)))
		b.WriteByte(' ')
		b.WriteString(w)
		b.WriteByte(' ')
		b.WriteString(pick(r, v.adjectives))
		b.WriteString(" choice for ")
		b.WriteString(fillerWords[r.IntN(len(fillerWords))])
		b.WriteString(" use")
	case 2:
		w := v.categoryWord(r)
		b.WriteString("Features ")
		b.WriteString(article(w))
		b.WriteByte(' ')
		b.WriteString(w)
		b.WriteString(" design and ")
		b.WriteString(v.categoryWord(r))
		b.WriteString(" finish")
	default:
		b.WriteString("Perfect ")
		b.WriteString(fillerWords[r.IntN(len(fillerWords))])
		w := v.categoryWord(r)
		b.WriteString(" for anyone who needs ")
		b.WriteString(article(w))
		b.WriteByte(' ')
		b.WriteString(w)
		b.WriteByte(' ')
		b.WriteString(pick(r, v.nouns))
	}
	b.WriteByte('.')
	return b.String()
}

// paragraph joins n sentences.
func (v *categoryVocab) paragraph(r *rand.Rand, noun string, n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = v.sentence(r, noun)
	}
	return strings.Join(parts, " ")
}

// sentimentTemplate fills the single %s of a template with noun.
func sentimentTemplate(tmpl, noun string) string {
	return strings.Replace(tmpl, "%s", noun, 1)
}

// review returns the review text and summary of a rating for an item noun.
func (v *categoryVocab) review(r *rand.Rand, noun string, rating int) (text, summary string) {
	var openers, summaries []string
	switch {
	case rating >= 4:
		openers, summaries = positiveOpeners[:], positiveSummaries[:]
	case rating == 3:
		openers, summaries = neutralOpeners[:], neutralSummaries[:]
	default:
		openers, summaries = negativeOpeners[:], negativeSummaries[:]
	}
	var b strings.Builder
	b.WriteString(sentimentTemplate(pick(r, openers), noun))
	for range r.IntN(3) {
		b.WriteByte(' ')
		b.WriteString(v.sentence(r, noun))
	}
	return b.String(), capitalize(sentimentTemplate(pick(r, summaries), noun))
}

// reviewerName returns a display name in one of the styles seen in the data.
func reviewerName(r *rand.Rand) string {
	first, last := pick(r, firstNames[:]), pick(r, lastNames[:])
	switch x := r.IntN(20); {
	case x == 0:
		return "Amazon Customer"
	case x < 8:
		return first + " " + last
	case x < 13:
		return first[:1] + ". " + last
	case x < 17:
		return first
	default:
		return strings.ToLower(first) + strconv.Itoa(10+r.IntN(9990))
	}
}
